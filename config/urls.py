from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", include("schools.urls")),
    path("accounts/", include("accounts.urls")),
    path("outbox/", include("outbox.urls")),
    path("django-admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on pages that do not name an icon (raw email bodies, the admin).
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
