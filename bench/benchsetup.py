"""What every benchmark starts with: the project on the path, Django set up with DEBUG off, and a query
counter. Import it before anything from Django or the project:

    import benchsetup  # noqa: F401 (sets Django up)
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402

# Production runs with DEBUG off; with it on, Django keeps the SQL of every query in memory.
settings.DEBUG = False


class QueryCounter:
    """`with connection.execute_wrapper(counter):` counts the queries run inside."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)
