"""The sign-off panel on a PIA version's page, and small helpers for the workflow's templates.

The panel computes what this user may do with the version from their scope (the same rules as the services,
which check again when anything is recorded).
"""

from django import template

from pia import services
from pia.models import PiaVersion
from pia.questions import STEPS
from schools.scope import scope_for

register = template.Library()

STEP_TITLES = {step.key: step.title for step in STEPS}
Status = PiaVersion.Status


@register.filter
def step_title(key: str) -> str:
    return STEP_TITLES.get(key, key)


@register.simple_tag
def version_url(version: PiaVersion) -> str:
    return services.version_page_path(version)


@register.inclusion_tag("pia/workflow/_panel_content.html", takes_context=True)
def pia_workflow_panel(context, version: PiaVersion | None = None) -> dict:
    request = context["request"]
    version = version or context["version"]
    pia = version.pia
    scope = scope_for(request)
    own = services.is_own_version(request.user, version)
    status = version.status
    has_open = pia.versions.filter(status__in=PiaVersion.OPEN).exists()
    waiting_for_me = {
        Status.SUBMITTED: services.may_advise(scope, pia),
        Status.ADVISED: services.may_decide(scope, pia),
        Status.DECIDED: services.may_sign(scope, pia),
    }.get(status, False)
    return {
        "version": version,
        "pia": pia,
        "decisions": list(version.decisions.order_by("decided_at", "id")),
        "can_submit": version.is_editable and services.may_author(scope, pia),
        "can_advise": status == Status.SUBMITTED and not own and services.may_advise(scope, pia),
        "can_decide": status == Status.ADVISED and not own and services.may_decide(scope, pia),
        "can_sign": status == Status.DECIDED and not own and services.may_sign(scope, pia),
        "can_revise": status == Status.SIGNED and not has_open and services.may_author(scope, pia),
        "own_blocks": own and waiting_for_me,
        "is_dpo": services.may_advise(scope, pia),
        "csrf_token": context.get("csrf_token"),
    }
