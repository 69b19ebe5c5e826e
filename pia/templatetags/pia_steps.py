"""Small helpers of the PIA step pages' templates."""

from django import forms, template

register = template.Library()


@register.filter
def pia_column(bound_field) -> str:
    """The grid column of a row's field: long text wide, choices and dates narrow, so a row reads on a phone."""
    widget = bound_field.field.widget
    if isinstance(widget, forms.Textarea):
        return "col-12 col-md-6 col-xl-4"
    if isinstance(widget, (forms.Select, forms.DateInput)):
        return "col-6 col-md-3 col-xl-2"
    if (getattr(bound_field.field, "max_length", None) or 0) >= 300:
        return "col-12 col-md-6"
    return "col-6 col-md-3 col-xl-2"


@register.filter
def pia_complete_count(progress) -> int:
    """How many steps of `pia.editing.steps_progress` are complete."""
    return sum(1 for state in progress if state.complete)
