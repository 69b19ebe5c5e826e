"""The client's address, for the sign-in lockout and the parent-link rate limit.

Behind reverse proxies the connection comes from the nearest proxy, and X-Forwarded-For lists
"client, proxy1, proxy2": each trusted proxy appends the address it received from. With
TRUSTED_PROXY_COUNT = N trusted proxies, the client is the Nth entry from the right. Entries to its left
are whatever the client chose to send, so they are never trusted.
"""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")
