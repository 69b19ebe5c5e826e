"""The outputs panel of a PIA version's page: its PDF, the privacy notice for parents, the platforms it approves."""

from django import template

from pia.models import Platform
from pia.outputs import may_adopt_notice
from pia.platforms import platform_status
from schools.scope import scope_for

register = template.Library()


@register.inclusion_tag("pia/outputs/_panel_body.html", takes_context=True)
def pia_outputs_panel(context, version):
    """Reads only: what to link to, and each platform attached to this PIA with its state today."""
    request = context.get("request")
    scope = scope_for(request) if request is not None else None
    platforms = [
        (platform, platform_status(platform=platform))
        for platform in Platform.objects.filter(pia_id=version.pia_id).select_related("pia").order_by("name", "pk")
    ]
    return {
        "version": version,
        "signed": version.is_frozen_for_good,
        "platforms": platforms,
        "may_adopt": bool(scope and version.is_frozen_for_good and may_adopt_notice(scope, version)),
    }
