"""Logging filters. `MaskParentTokens` keeps parent-link tokens out of every log line (promise 8)."""

import logging
import re

# /p/<token> as it appears in request lines, access logs and error messages.
_PARENT_TOKEN = re.compile(r"/p/[^/\s?#\"']+")


def mask_parent_tokens(text: str) -> str:
    return _PARENT_TOKEN.sub("/p/***", text)


class MaskParentTokens(logging.Filter):
    """Rewrite the record in place so that every handler after this one sees the masked text.

    The message is formatted here (msg % args), because access loggers such as django.server and
    gunicorn.access pass the request line as an argument, not in the format string."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's problem to report, not ours to hide
            return True
        masked = mask_parent_tokens(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True

