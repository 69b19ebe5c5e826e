"""Forms of the outputs pages: a platform, and adopting the privacy notice text as a consent notice draft.

Each takes the organisation as a keyword argument and limits its choices to it; the services check again."""

from django import forms

from consent.models import Purpose

from .models import Pia, Platform


class PlatformForm(forms.Form):
    name = forms.CharField(max_length=Platform._meta.get_field("name").max_length,
                           help_text="As staff and parents know it, e.g. “Zoom”.")
    kind = forms.ChoiceField(choices=Platform.Kind.choices)
    pia = forms.ModelChoiceField(
        queryset=Pia.objects.none(), required=False, label="PIA that approves it", empty_label="No PIA yet",
        help_text="The platform is approved only while this PIA has a signed version within its review date.",
    )

    def __init__(self, *args, organisation, scope, **kwargs):
        super().__init__(*args, **kwargs)
        # The organisation's PIAs this person reads: the organisation-wide ones, and those of their own schools
        # (a headteacher of one school does not learn another school's PIAs from this list).
        pias = scope.filter(Pia.objects.filter(organisation=organisation), school_path="school",
                            organisation_path="organisation")
        self.fields["pia"].queryset = pias.select_related("school").order_by("title", "school__name", "pk")
        self.fields["pia"].label_from_instance = lambda pia: (
            f"{pia.title} — {pia.school.name if pia.school_id else 'whole organisation'}")


class NoticeAdoptForm(forms.Form):
    purpose = forms.ModelChoiceField(queryset=Purpose.objects.none(), label="Consent notice",
                                     empty_label=None)
    replace_draft = forms.BooleanField(
        required=False, label="If this notice already has a draft, replace the privacy notice of that draft",
        help_text="Its letter and protocol stay as they are in the draft.",
    )

    def __init__(self, *args, organisation, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["purpose"].queryset = Purpose.objects.filter(organisation=organisation).order_by("name", "pk")
