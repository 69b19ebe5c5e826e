"""Staff pages of the consent registry: pupils, guardians, consent history and staff-recorded consent."""

from django.http import Http404


def _todo(request, *args, **kwargs):
    raise Http404


pupil_list = pupil_detail = consent_record = guardian_detail = guardian_edit = _todo
event_detail = event_attachment = _todo
