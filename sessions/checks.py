"""Deployment checks of what sending invitations needs of its surroundings (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register

PER_PROCESS_CACHES = ("django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.dummy.DummyCache")


@register(Tags.caches, deploy=True)
def shared_cache(app_configs, **kwargs) -> list[Warning]:
    """The send task's progress marks (`sessions.progress.AcceptedMarks`) are read by the sweeper in another
    process, as rate limits are shared between web processes: a per-process cache sees neither."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend not in PER_PROCESS_CACHES:
        return []
    return [Warning(
        f"The cache ({backend.rsplit('.', 1)[-1]}) is private to each process.",
        hint="Set CACHE_URL to a shared cache (redis://…/1). Without one, a worker that dies mid-batch has its "
             "invitations already accepted by the mail server sent again, and rate limits apply per process.",
        id="video_sessions.W001",
    )]
