"""A PIA signed through the real sign-off services, for the tests of what comes after signing (PDF, gate)."""

from pia import services
from pia.models import PiaVersion
from tests.pia.pia_setup import draft_pia


def signed_pia(personas, *, organisation_wide=False, title="Zoom", review_on=None, author=None) -> PiaVersion:
    """Version 1 of a PIA of `personas.school` (or of the whole organisation), written and submitted by the office
    (or `author`), advised on by the DPO, accepted by the headteacher and signed by the SIRO."""
    author = author or personas.office
    school = None if organisation_wide else personas.school
    version = draft_pia(personas.organisation, author, school=school, title=title, review_on=review_on)
    services.version_submit(version=version, actor=author)
    services.version_advise(version=version, actor=personas.dpo, advice="Proceed with the mitigations listed.",
                            step_comments={"risks": "The ratings are reasonable."})
    services.version_decide(version=version, actor=personas.headteacher, accept=True, reasons="")
    return services.version_sign(version=version, actor=personas.siro)
