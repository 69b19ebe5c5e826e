"""Importing pupils, guardians and groups from a school's MIS (generic CSV or a OneRoster 1.2 bundle).

The flow the upload pages and the Celery task follow:

    roster = read_roster(data, filename)            # ImportFileError: the whole file is unusable
    plan = import_plan(school=school, rows=roster, full=True)
    ...show plan.row_actions, plan.errors, plan.counts(); store plan.to_dict() or the file...
    import_apply(plan=plan, actor=request.user)     # ImportRefused if it has errors or is stale
"""

from .columns import COLUMNS, RELATIONSHIPS, template_csv
from .plan import ImportPlan, ImportRefused, import_apply, import_plan
from .reading import ContactRow, ImportFileError, Roster, RowError, max_import_bytes, read_roster

__all__ = [
    "COLUMNS",
    "RELATIONSHIPS",
    "ContactRow",
    "ImportFileError",
    "ImportPlan",
    "ImportRefused",
    "Roster",
    "RowError",
    "import_apply",
    "import_plan",
    "max_import_bytes",
    "read_roster",
    "template_csv",
]
