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
    status = version.status
    has_open = pia.versions.filter(status__in=PiaVersion.OPEN).exists()
    signature, waiting_for_me = {
        Status.SUBMITTED: ("advice", services.may_advise(scope, pia)),
        Status.ADVISED: ("controller", services.may_decide(scope, pia)),
        Status.DECIDED: ("siro", services.may_sign(scope, pia)),
    }.get(status, ("", False))
    # The same refusal the decision page and the service give: an author of the version, or someone who made
    # another of its signatures, sees why instead of a button.
    refusal = services.refusal_for(request.user, version, signature) if waiting_for_me else None
    allowed = waiting_for_me and not refusal
    return {
        "version": version,
        "pia": pia,
        "decisions": list(version.decisions.order_by("decided_at", "id")),
        "can_submit": version.is_editable and services.may_author(scope, pia),
        "can_advise": status == Status.SUBMITTED and allowed,
        "can_decide": status == Status.ADVISED and allowed,
        "can_sign": status == Status.DECIDED and allowed,
        "can_revise": status == Status.SIGNED and not has_open and services.may_author(scope, pia),
        "refusal": refusal,
        "is_dpo": services.may_advise(scope, pia),
        "csrf_token": context.get("csrf_token"),
    }
