"""The maintained consent counts (consent.counts) equal a recount from the registry after every kind of change."""

import datetime as dt

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from consent.counts import FIELDS, school_figures
from consent.figures import consent_figures
from consent.models import ConsentCounts, ConsentEvent, Guardianship
from consent.retention import guardian_erase
from consent.services import (
    consent_give,
    consent_lapse_due,
    consent_record_by_staff,
    consent_refuse,
    consent_withdraw,
)
from tests.consent.consent_setup import guardian_of, publish, pupil_at, purpose_for
from tests.consent.test_import import roster_csv, run_import

pytestmark = pytest.mark.django_db

SEPT_1 = dt.datetime(2026, 9, 1, 9, tzinfo=dt.UTC)


def assert_counts_true(school, purpose) -> None:
    recount = consent_figures(school_ids=[school.pk], purpose=purpose).get(school.pk)
    stored = school_figures(school_ids=[school.pk], purpose=purpose).get(school.pk)
    assert stored == recount


@pytest.fixture
def family(personas):
    """Three pupils on roll, each with one guardian with parental responsibility; one has a second guardian."""
    school = personas.school
    purpose = purpose_for(school)
    notice = publish(purpose)
    pupils = [pupil_at(school, mis_id=f"P{i}") for i in range(1, 4)]
    guardians = [guardian_of(pupil) for pupil in pupils]
    second = guardian_of(pupils[0])
    return school, purpose, notice, pupils, guardians, second


def test_each_decision_by_link_moves_the_counts_as_a_recount_would(family):
    school, purpose, notice, pupils, guardians, second = family
    consent_give(guardian=guardians[0], pupil=pupils[0], notice=notice, attestation=True)
    assert ConsentCounts.objects.get(school=school, purpose=purpose).given == 1
    assert_counts_true(school, purpose)
    consent_give(guardian=second, pupil=pupils[0], notice=notice, attestation=True)  # still one pupil
    assert_counts_true(school, purpose)
    consent_refuse(guardian=guardians[1], pupil=pupils[1], notice=notice)
    assert_counts_true(school, purpose)
    consent_withdraw(guardian=second, pupil=pupils[0], notice=notice)  # a "no" from either guardian wins
    assert_counts_true(school, purpose)
    assert school_figures(school_ids=[school.pk], purpose=purpose)[school.pk].withdrawn == 1
    consent_give(guardian=second, pupil=pupils[0], notice=notice, attestation=True)
    consent_give(guardian=guardians[2], pupil=pupils[2], notice=notice, attestation=True)
    assert_counts_true(school, purpose)
    figures = school_figures(school_ids=[school.pk], purpose=purpose)[school.pk]
    assert (figures.total, figures.given, figures.refused, figures.no_answer) == (3, 2, 1, 0)


def test_a_decision_recorded_by_staff_moves_the_counts(family, personas):
    school, purpose, notice, pupils, guardians, _ = family
    consent_record_by_staff(staff=personas.office, guardian=guardians[1], pupil=pupils[1], notice=notice,
                            kind=ConsentEvent.Kind.REFUSED, channel=ConsentEvent.Channel.PAPER_FORM,
                            received_on=timezone.localdate())
    assert_counts_true(school, purpose)


def test_renewal_and_lapse_keep_the_counts_true(personas):
    school = personas.school
    purpose = purpose_for(school)
    with time_machine.travel(SEPT_1, tick=False):
        notice = publish(purpose)
        pupils = [pupil_at(school, mis_id=f"P{i}") for i in range(1, 3)]
        guardians = [guardian_of(pupil) for pupil in pupils]
        for guardian, pupil in zip(guardians, pupils, strict=True):
            consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
        publish(purpose, material_change=True, renewal_deadline=dt.date(2026, 9, 30))
        assert_counts_true(school, purpose)
        assert ConsentCounts.objects.get(school=school, purpose=purpose).renewal == 2
        consent_give(guardian=guardians[0], pupil=pupils[0], notice=purpose.current_notice(), attestation=True)
        assert_counts_true(school, purpose)
    with time_machine.travel(dt.datetime(2026, 10, 1, 6, tzinfo=dt.UTC), tick=False):
        assert consent_lapse_due(now=timezone.now()) == 1
    assert_counts_true(school, purpose)
    row = ConsentCounts.objects.get(school=school, purpose=purpose)
    assert (row.given, row.renewal, row.lapsed) == (1, 0, 1)


def test_an_import_that_unlinks_guardians_and_marks_leavers_recounts_the_school(personas):
    school = personas.school
    purpose = purpose_for(school)
    notice = publish(purpose)
    rows = [
        ["P1", "Amelia", "Quayle", "7", "7Q", "C1", "Joan", "Quayle", "joan@example.net", "", "Mother", "Yes"],
        ["P1", "Amelia", "Quayle", "7", "7Q", "C2", "Tom", "Quayle", "tom@example.net", "", "Father", "Yes"],
        ["P2", "Finlo", "Kelly", "9", "9K", "C3", "Ealish", "Kelly", "ealish@example.net", "", "Carer", "Yes"],
    ]
    run_import(school, roster_csv(rows), full=True)
    links = {(g.pupil.mis_id, g.guardian.mis_id): g for g in Guardianship.objects.select_related("pupil", "guardian")}
    consent_give(guardian=links["P1", "C1"].guardian, pupil=links["P1", "C1"].pupil, notice=notice, attestation=True)
    consent_refuse(guardian=links["P1", "C2"].guardian, pupil=links["P1", "C2"].pupil, notice=notice)
    consent_give(guardian=links["P2", "C3"].guardian, pupil=links["P2", "C3"].pupil, notice=notice, attestation=True)
    assert ConsentCounts.objects.get(school=school, purpose=purpose).refused == 1
    # Tom is no longer P1's contact (his refusal stops counting) and P2 has left.
    run_import(school, roster_csv(rows[:1]), full=True)
    assert_counts_true(school, purpose)
    row = ConsentCounts.objects.get(school=school, purpose=purpose)
    assert (row.given, row.refused) == (1, 0)
    # P2 comes back.
    run_import(school, roster_csv(rows), full=True)
    assert_counts_true(school, purpose)


def test_erasing_a_parent_who_refused_recounts_the_school(family, personas):
    school, purpose, notice, pupils, guardians, second = family
    consent_give(guardian=guardians[0], pupil=pupils[0], notice=notice, attestation=True)
    consent_refuse(guardian=second, pupil=pupils[0], notice=notice)
    assert ConsentCounts.objects.get(school=school, purpose=purpose).refused == 1
    guardian_erase(guardian=second, actor=personas.headteacher)
    assert_counts_true(school, purpose)
    assert ConsentCounts.objects.get(school=school, purpose=purpose).given == 1


def test_a_pupil_who_left_moves_no_count(family):
    school, purpose, notice, pupils, guardians, _ = family
    consent_give(guardian=guardians[0], pupil=pupils[0], notice=notice, attestation=True)
    leaver = pupil_at(school, mis_id="P9", left_on=timezone.localdate())
    consent_refuse(guardian=guardian_of(leaver), pupil=leaver, notice=notice)
    assert_counts_true(school, purpose)


def test_the_rebuild_command_recounts_rows_written_around_the_services(family):
    school, purpose, notice, pupils, guardians, _ = family
    consent_give(guardian=guardians[0], pupil=pupils[0], notice=notice, attestation=True)
    ConsentCounts.objects.filter(school=school).update(**dict.fromkeys(FIELDS, 7))
    call_command("consent_counts_rebuild", stdout=None)
    assert_counts_true(school, purpose)


def test_a_pupil_marked_as_left_in_the_admin_leaves_the_counts(client, family):
    from accounts.models import User
    from tests.conftest import sign_in
    from tests.factories import TOTPDeviceFactory

    school, purpose, notice, pupils, guardians, _ = family
    consent_give(guardian=guardians[0], pupil=pupils[0], notice=notice, attestation=True)
    root = User.objects.create_superuser("root", "root@example.org", "x")
    TOTPDeviceFactory(user=root)
    sign_in(client, root)
    link = Guardianship.objects.get(pupil=pupils[0], guardian=guardians[0])
    response = client.post(reverse("admin:consent_pupil_change", args=[pupils[0].pk]), {
        "school": school.pk, "mis_id": "P1", "first_name": "Ada", "last_name": "Left", "year_group": "",
        "left_on": timezone.localdate().isoformat(),
        "guardianships-TOTAL_FORMS": "2", "guardianships-INITIAL_FORMS": "2", "guardianships-MIN_NUM_FORMS": "0",
        "guardianships-MAX_NUM_FORMS": "1000",
        **{f"guardianships-{i}-{name}": value for i, g in enumerate(
            Guardianship.objects.filter(pupil=pupils[0]).order_by("pk"))
           for name, value in (("id", g.pk), ("pupil", pupils[0].pk), ("guardian", g.guardian_id),
                               ("relationship", g.relationship), ("parental_responsibility", "on"))},
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    assert link.pupil.__class__.objects.get(pk=pupils[0].pk).left_on is not None
    assert_counts_true(school, purpose)
    assert ConsentCounts.objects.get(school=school, purpose=purpose).given == 0
