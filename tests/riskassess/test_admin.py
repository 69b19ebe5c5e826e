"""The risk register in the admin: readable by a superuser with a second factor, never written there."""

import datetime as dt

import pytest
from django.urls import reverse

from accounts.models import User
from riskassess.services import assessment_create_from_template
from tests.conftest import sign_in
from tests.factories import TOTPDeviceFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", ["assessment", "assessmentversion", "riskmatrix", "reminder", "reviewflag"])
def test_every_risk_model_lists_in_the_admin_and_none_can_be_added_there(client, personas, model):
    assessment_create_from_template(school=personas.school, actor=personas.headteacher, assessor_name="M Kelly",
                                    assessed_on=dt.date(2026, 11, 1))
    user = User.objects.create_superuser("root", "root@example.org", "x")
    TOTPDeviceFactory(user=user)
    sign_in(client, user)
    assert client.get(reverse(f"admin:riskassess_{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:riskassess_{model}_add")).status_code == 403
