"""The deployment check that the cache is shared between processes."""

from sessions.checks import shared_cache


def test_a_per_process_cache_is_reported_for_deployment(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    [warning] = shared_cache(None)
    assert warning.id == "video_sessions.W001" and "CACHE_URL" in warning.hint


def test_a_shared_cache_passes(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:6379/1"}}
    assert shared_cache(None) == []
