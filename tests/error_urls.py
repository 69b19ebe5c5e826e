"""The site's URLs and error pages plus views that fail, for the tests of the error pages."""

from django.core.exceptions import PermissionDenied
from django.db import OperationalError
from django.urls import path

from config.urls import handler403, handler404, handler500
from config.urls import urlpatterns as site_urlpatterns

__all__ = ["handler403", "handler404", "handler500", "urlpatterns"]


def crash(request):
    raise RuntimeError("secret detail: SELECT password FROM sessions_videosession")


def database_down(request):
    raise OperationalError("could not connect to server at 10.0.0.7 port 5432")


def forbidden(request):
    raise PermissionDenied("the internal reason")


urlpatterns = [
    path("test-errors/crash/", crash),
    path("test-errors/database-down/", database_down),
    path("test-errors/forbidden/", forbidden),
    path("p/<str:token>/crash/", crash),
    *site_urlpatterns,
]
