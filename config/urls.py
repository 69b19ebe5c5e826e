from django.conf import settings
from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path


def favicon(request):
    # Resolved per request: with the manifest storage the hashed name exists only after collectstatic.
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


urlpatterns = [
    path("", include("schools.urls")),
    path("accounts/", include("accounts.urls")),
    path("outbox/", include("outbox.urls")),
    # Parent links: short, as they are read in emails; the token is the only key.
    path("p/", include("consent.urls_parent")),
    path("registry/", include("consent.urls")),
    path("risks/", include("riskassess.urls")),
    path("pia/", include("pia.urls")),
    path("sessions/", include("sessions.urls")),
    path("django-admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on pages that do not name an icon (raw email bodies, the admin).
    path("favicon.ico", favicon),
]

if settings.DEBUG:
    from django.conf.urls.static import static as media_patterns

    urlpatterns += media_patterns(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

# Failing requests get pages in the site's layout (config.errors); parent links keep their own.
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
