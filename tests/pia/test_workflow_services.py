"""The sign-off services: submit, advise or request changes, decide, sign, revise."""

import pytest

from pia.models import PiaVersion
from tests.pia.pia_signed import signed_pia

pytestmark = pytest.mark.django_db


def test_signed_pia_helper_signs_through_the_services(personas):
    version = signed_pia(personas)
    assert version.status == PiaVersion.Status.SIGNED
    assert version.hash_verifies()
