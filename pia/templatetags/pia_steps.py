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
    return "col-12 col-md-6 col-xl-3"
