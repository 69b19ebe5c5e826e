"""PIA emails for tests/test_email_links.py's every_email fixture: made through the real services."""

from pia import services
from tests.pia.pia_setup import draft_pia


def produce(personas) -> None:
    """One of each sign-off email: waiting for the DPO, changes requested (back to the author), waiting for the
    data controller, waiting for the SIRO (all `pia-waiting`), and signed (`pia-signed`)."""
    version = draft_pia(personas.organisation, personas.office, school=personas.school, title="Emails PIA")
    services.version_submit(version=version, actor=personas.office)
    services.version_request_changes(version=version, actor=personas.dpo, comments="Name the data retention period.",
                                     step_comments={"flows": "Say when recordings are deleted."})
    services.version_submit(version=version, actor=personas.office)
    services.version_advise(version=version, actor=personas.dpo, advice="Proceed.")
    services.version_decide(version=version, actor=personas.headteacher, accept=True)
    services.version_sign(version=version, actor=personas.siro)
