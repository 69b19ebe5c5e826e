"""Building PIAs for tests without going through the pages.

`draft_pia` writes a draft with one row of each table straight through the ORM, so the tests of one
feature do not depend on another feature's services. Tests of the workflow itself use the real services.
"""

import datetime as dt

from django.utils import timezone

from pia.models import Action, Consultation, DataItem, Pia, PiaVersion, PrivacyRisk
from pia.questions import PRINCIPLE_QUESTIONS, SCREENING
from riskassess.models import matrix_for


def draft_pia(organisation, author, *, school=None, title="Zoom", review_on=None) -> PiaVersion:
    """A complete draft (every step answered, one row per table) by `author`."""
    pia = Pia.objects.create(organisation=organisation, school=school, title=title, created_by=author)
    matrix = matrix_for(organisation)
    version = PiaVersion.objects.create(
        pia=pia, number=1, created_by=author, matrix=matrix.as_dict(), lead_officer="Executive headteacher",
        division=organisation.name, review_on=review_on or timezone.localdate() + dt.timedelta(days=365),
        screening={q.key: {"answer": "yes" if i < 4 else "no", "note": ""} for i, q in enumerate(SCREENING)},
        aims="Live lessons with small groups of pupils.", benefits_organisation="Direct contact with pupils.",
        benefits_individuals="Learning continues.", benefits_others="Educational development continues.",
        need_reason="The platform raises privacy and security issues.",
        collection="Only with consent.", use="Online lessons only.", deletion="The August after a pupil leaves.",
        risks_identified="Zoombombing; data shared with the platform.",
        risks_addressed="Meetings password protected; links not shared.",
        internal_consultees="Teaching staff.", external_consultees="Parents; the DPO.",
        consultation_method="Staff meeting; letter to parents.", contact_point="Executive headteacher",
        principles={q.key: "Yes." for q in PRINCIPLE_QUESTIONS},
    )
    DataItem.objects.create(version=version, data_type="Information that identifies you",
                            examples="Name, email address", platform_uses="Provide the service")
    Consultation.objects.create(version=version, kind=Consultation.Kind.INTERNAL, held_on=dt.date(2020, 5, 19),
                                description="Staff meeting")
    PrivacyRisk.objects.create(version=version, privacy_issue="Disclosure of personal information",
                               risk_to_individuals="Shared with the platform", compliance_risk="Non-compliance",
                               organisational_risk="Fines and reputational damage", likelihood=2, severity=2,
                               rating=4, solution="Up to date software.", result=PrivacyRisk.Result.ACCEPTED,
                               evaluation="Proportionate.")
    Action.objects.create(version=version, action="Update the privacy notice", responsibility="Headteacher",
                          due_on=timezone.localdate() + dt.timedelta(days=30))
    return version
