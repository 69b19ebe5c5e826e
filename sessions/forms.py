"""Forms of the session pages. They read the fields; the rules (gate, link, time zone, protocol) are the
services' (`sessions.services`), whose errors the views put back on these fields."""

import datetime as dt

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from consent.models import Group, Pupil, Purpose
from pia.models import Platform
from schools.models import SCHOOL_ROLES, School

from .coverage import Coverage, coverage_for
from .gate import session_gate
from .models import Protocol, VideoSession
from .protocol import FLAGS, MINUTES_BOUNDS, effective_protocol
from .services import clean_meeting_id, clean_meeting_url, clean_password, clean_title, gate_refusals


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%H:%M")


class StaffChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, user) -> str:
        return user.get_full_name() or user.get_username()


class PupilChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, pupil) -> str:
        return f"{pupil.last_name}, {pupil.first_name}" + (f" ({pupil.year_group})" if pupil.year_group else "")


def _service_check(name: str, check, value):
    try:
        result = check(value)
    except ValidationError as error:
        raise forms.ValidationError(error.message_dict[name]) from None
    return value if name == "password" else result


def school_staff(school: School):
    return get_user_model().objects.filter(
        is_active=True, memberships__school=school, memberships__role__in=sorted(SCHOOL_ROLES)
    ).distinct().order_by("first_name", "last_name", "pk")


class _SessionFields(forms.Form):
    # Not stripped: a trailing line break is refused by the service, never quietly dropped.
    title = forms.CharField(max_length=200, strip=False, help_text="One line: parents see it in the email's subject.")
    platform = forms.ModelChoiceField(queryset=Platform.objects.none())
    host = StaffChoiceField(queryset=None, help_text="A member of staff of the school.")
    groups = forms.ModelMultipleChoiceField(queryset=Group.objects.none(), required=False,
                                            widget=forms.CheckboxSelectMultiple)
    # Rendered by the picker (templates/sessions/_pupil_picker.html, rows from `sessions.picker`), never by the
    # widget: a school may have 2,000 pupils.
    pupils = PupilChoiceField(queryset=Pupil.objects.none(), required=False, label="Hand-picked pupils",
                              help_text="Beside or instead of groups.", widget=forms.CheckboxSelectMultiple)
    meeting_url = forms.CharField(label="Meeting link", max_length=2000,
                                  widget=forms.URLInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
                                  help_text="https only, on the platform's own address.")
    meeting_id = forms.CharField(label="Meeting ID", max_length=100, required=False)
    password = forms.CharField(max_length=64, required=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False))
    start_date = forms.DateField(label="Date", widget=DateInput)
    start_time = forms.TimeField(label="Start time", widget=TimeInput)
    duration_minutes = forms.IntegerField(label="Duration (minutes)", min_value=1, max_value=1440)
    lead_minutes = forms.IntegerField(
        label="Send the invitations (minutes before the start)", initial=VideoSession.LEAD_MINUTES_DEFAULT,
        min_value=1, max_value=100000,
        help_text=f"From {VideoSession.LEAD_MINUTES_MIN} minutes to 24 hours ({VideoSession.LEAD_MINUTES_MAX}).")
    # The figures the person confirmed ("7-31", `Coverage.key`) when few children may attend: rendered with the
    # coverage (templates/sessions/_coverage.html). Other figures need a new confirmation.
    confirm_coverage = forms.CharField(required=False, max_length=20)

    confirm_verb = "Schedule"
    coverage: Coverage | None = None

    def __init__(self, *args, school: School, **kwargs):
        super().__init__(*args, **kwargs)
        self.school = school
        self.fields["platform"].queryset = Platform.objects.filter(organisation_id=school.organisation_id).order_by(
            "name")
        platforms = list(self.fields["platform"].queryset.values_list("pk", flat=True)[:2])
        if len(platforms) == 1 and not self.initial.get("platform"):
            self.initial["platform"] = platforms[0]  # the organisation's only platform: nothing to choose
        self.fields["host"].queryset = school_staff(school)
        self.fields["groups"].queryset = Group.objects.filter(school=school).order_by("name")
        self.fields["pupils"].queryset = Pupil.objects.filter(
            school=school, left_on__isnull=True, archived_at__isnull=True).order_by("last_name", "first_name", "pk")
        self.fields["start_time"].help_text = f"In the school's time zone ({school.time_zone})."
        self.fields["duration_minutes"].initial = effective_protocol(school).max_duration_minutes

    # The services' own checks, run here too so that every field's error shows at once, even when another field
    # (a missing date, say) stops the form before the service is called. The service checks them all again.
    def clean_title(self) -> str:
        return _service_check("title", clean_title, self.cleaned_data["title"])

    def clean_meeting_id(self) -> str:
        return _service_check("meeting_id", clean_meeting_id, self.cleaned_data["meeting_id"])

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if password:
            _service_check("password", clean_password, password)
        return password

    def clean(self):
        data = super().clean()
        platform, url = data.get("platform"), data.get("meeting_url")
        if platform is not None and url:
            try:
                clean_meeting_url(url, kind=platform.kind)
            except ValidationError as error:
                self.add_error("meeting_url", error.message_dict["meeting_url"])
        if platform is not None and data.get("host") is not None:
            gate = session_gate(school=self.school, platform=platform, host=data["host"])
            for refusal in gate_refusals(gate):
                self.add_error(None, refusal)
        self._check_coverage(data)
        return data

    def coverage_purpose(self, data: dict) -> Purpose | None:
        raise NotImplementedError

    def audience_changed(self, data: dict) -> bool:
        return True

    def _check_coverage(self, data: dict) -> None:
        """Fewer children than the organisation's share may attend: the form goes no further until the person
        confirms these very figures. Checked here, on the server, so that posting the form directly cannot skip
        it; the view shows the same figures beside the box to tick."""
        purpose = self.coverage_purpose(data)
        if purpose is None or "groups" not in data or "pupils" not in data:
            return
        self.coverage = coverage = coverage_for(school=self.school, purpose=purpose,
                                                group_ids=[g.pk for g in data["groups"]],
                                                pupil_ids=[p.pk for p in data["pupils"]])
        if not (coverage.below_threshold and self.audience_changed(data)):
            return
        confirmed = data.get("confirm_coverage") or ""
        if confirmed != coverage.key:
            changed = "The figures have changed since you ticked the box. " if confirmed else ""
            self.add_error("confirm_coverage", (
                f"{changed}Only {coverage.may_attend} of {coverage.total} children may attend "
                f"({coverage.percent}\u00a0%), fewer than {coverage.owner}'s {coverage.threshold}\u00a0%. "
                f"Tick “{self.confirm_verb} anyway” if it should go ahead all the same."))

    @property
    def low_coverage_confirmed(self) -> bool:
        """The person confirmed figures below the threshold (valid forms only): the service records it."""
        return bool(self.coverage and self.coverage.below_threshold and self.audience_changed(self.cleaned_data)
                    and self.cleaned_data.get("confirm_coverage") == self.coverage.key)

    def starts_at(self) -> dt.datetime:
        """The wall-clock start, naive: the service places it in the school's time zone."""
        return dt.datetime.combine(self.cleaned_data["start_date"], self.cleaned_data["start_time"])


class ScheduleForm(_SessionFields):
    purpose = forms.ModelChoiceField(queryset=Purpose.objects.none(), label="What parents agree to",
                                     help_text="Invitations go only to parents who consented to this purpose.")
    repeat_weekly_until = forms.DateField(label="Repeat weekly until", required=False, widget=DateInput,
                                          help_text="Leave empty for one session. At most 26 weeks.")

    field_order = ["title", "platform", "host", "purpose", "groups", "pupils", "meeting_url", "meeting_id",
                   "password", "start_date", "start_time", "duration_minutes", "repeat_weekly_until", "lead_minutes"]

    def __init__(self, *args, school: School, **kwargs):
        super().__init__(*args, school=school, **kwargs)
        purposes = Purpose.objects.filter(organisation_id=school.organisation_id).order_by("id")
        self.fields["purpose"].queryset = purposes
        first = purposes.first()
        if first is not None:
            self.fields["purpose"].initial = first.pk
        if purposes.count() <= 1:
            self.fields["purpose"].widget = forms.HiddenInput()
        self.fields["password"].help_text = ("Leave empty and Gatehouse makes a strong one for you to set on the "
                                             "platform.")

    def coverage_purpose(self, data: dict) -> Purpose | None:
        return data.get("purpose")


class EditForm(_SessionFields):
    field_order = ["title", "platform", "host", "groups", "pupils", "meeting_url", "meeting_id", "password",
                   "start_date", "start_time", "duration_minutes", "lead_minutes"]

    confirm_verb = "Save"

    def __init__(self, *args, school: School, purpose: Purpose, **kwargs):
        super().__init__(*args, school=school, **kwargs)
        self.purpose = purpose
        self.fields["password"].label = "New password"
        self.fields["password"].help_text = "Leave empty to keep the current one. A new one is sent again to " \
                                            "parents already invited."

    def coverage_purpose(self, data: dict) -> Purpose | None:
        return self.purpose

    def audience_changed(self, data: dict) -> bool:
        """Only a change of groups or pupils asks again: a new title does not re-open a confirmed shortfall."""
        return ({g.pk for g in data.get("groups") or ()} != set(self.initial.get("groups") or ())
                or {p.pk for p in data.get("pupils") or ()} != set(self.initial.get("pupils") or ()))


def edit_initial(session: VideoSession) -> dict:
    local = session.starts_at.astimezone(session.school.tz)
    return {
        "title": session.title, "platform": session.platform_id, "host": session.host_id,
        "groups": list(session.groups.values_list("pk", flat=True)),
        "pupils": list(session.pupils.values_list("pk", flat=True)),
        "meeting_url": session.meeting_url, "meeting_id": session.meeting_id,
        "start_date": local.date(), "start_time": local.time().replace(second=0, microsecond=0),
        "duration_minutes": session.duration_minutes, "lead_minutes": session.lead_minutes,
    }


class CancelForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=1000,
                             help_text="Kept in the audit trail; parents already invited are told the session is "
                                       "cancelled.")


class ListFilterForm(forms.Form):
    show = forms.ChoiceField(
        choices=[("school", "All sessions of my schools"), ("mine", "Mine (host or scheduled by me)")],
        required=False, label="Show")
    school = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="School")
    include_cancelled = forms.BooleanField(required=False, label="Include cancelled")
    blocked_only = forms.BooleanField(required=False, label="Only lessons that cannot go ahead")

    def __init__(self, *args, schools, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["school"].choices = [("", "All schools")] + [(s.pk, s.name) for s in schools]


class ProtocolForm(forms.Form):
    """The rules of a protocol version. For a school, a rule the organisation requires cannot be switched off
    and the minutes cannot exceed the organisation's (`protocol_check`, re-checked by the service)."""

    notes = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}),
                            help_text="Anything else parents and hosts should know.")

    def __init__(self, *args, current: Protocol, **kwargs):
        super().__init__(*args, **kwargs)
        fields = {}
        for name in FLAGS:
            label = Protocol._meta.get_field(name).verbose_name.capitalize()
            fields[name] = forms.BooleanField(required=False, label=label, initial=getattr(current, name))
        for name, (low, high) in MINUTES_BOUNDS.items():
            fields[name] = forms.IntegerField(label=Protocol._meta.get_field(name).verbose_name.capitalize(),
                                              min_value=low, max_value=high, initial=getattr(current, name))
        fields["notes"] = self.fields.pop("notes")
        fields["notes"].initial = current.notes
        self.fields = {**fields}
