"""Several guardians: any guardian with parental responsibility may consent; a "no" from any of them wins.

The property test drives random sequences of decisions through the services and checks, after every
step, that the stored status rows are the fold of the events (promise 6) and that each pupil's effective
state follows the rule.
"""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.models import ConsentEvent, ConsentState, ConsentStatus, GuardiansRule
from consent.services import (
    GuardianDecision,
    consent_give,
    consent_lapse_due,
    consent_record_by_staff,
    consent_refuse,
    consent_withdraw,
    effective_state,
    fold_events,
    pupil_consent_state,
    pupils_consent_states,
)

from .consent_setup import guardian_of, publish, pupil_at, purpose_for

RULE = GuardiansRule.ANY_MAY_CONSENT_REFUSAL_WINS


@pytest.fixture
def two_parents(personas):
    purpose = purpose_for(personas.school)
    notice = publish(purpose)
    pupil = pupil_at(personas.school)
    return purpose, notice, pupil, guardian_of(pupil), guardian_of(pupil)


def test_any_guardian_with_parental_responsibility_may_consent(two_parents):
    purpose, notice, pupil, mother, _father = two_parents
    consent_give(guardian=mother, pupil=pupil, notice=notice, attestation=True)
    assert pupil_consent_state(pupil=pupil, purpose=purpose).state == ConsentState.GIVEN


@pytest.mark.parametrize(("service", "state"), [(consent_refuse, "refused"), (consent_withdraw, "withdrawn")])
def test_a_refusal_or_withdrawal_by_either_guardian_wins_over_the_others_consent(two_parents, service, state):
    purpose, notice, pupil, mother, father = two_parents
    consent_give(guardian=mother, pupil=pupil, notice=notice, attestation=True)
    service(guardian=father, pupil=pupil, notice=notice)
    assert pupil_consent_state(pupil=pupil, purpose=purpose).state == state


def test_the_pupils_status_shows_which_guardian_decided_what(two_parents):
    purpose, notice, pupil, mother, father = two_parents
    consent_give(guardian=mother, pupil=pupil, notice=notice, attestation=True)
    consent_refuse(guardian=father, pupil=pupil, notice=notice)

    decisions = {d.guardian: d.state for d in pupil_consent_state(pupil=pupil, purpose=purpose).decisions}

    assert decisions == {mother: ConsentState.GIVEN, father: ConsentState.REFUSED}


def test_a_pupil_with_no_answers_has_no_consent(two_parents):
    purpose, _notice, pupil, *_ = two_parents
    state = pupil_consent_state(pupil=pupil, purpose=purpose)
    assert (state.state, len(state.decisions)) == (ConsentState.NONE, 2)


def test_consent_does_not_count_once_the_guardian_no_longer_has_parental_responsibility(two_parents):
    purpose, notice, pupil, mother, _father = two_parents
    consent_give(guardian=mother, pupil=pupil, notice=notice, attestation=True)
    mother.guardianships.filter(pupil=pupil).update(parental_responsibility=False)
    assert pupil_consent_state(pupil=pupil, purpose=purpose).state == ConsentState.NONE


def test_the_rule_is_pure_and_an_unknown_rule_is_an_error():
    yes = GuardianDecision(guardian=None, parental_responsibility=True, state="given", renewal_needed=False)
    stale = GuardianDecision(guardian=None, parental_responsibility=True, state="given", renewal_needed=True)
    assert effective_state([yes, stale], RULE) == ("given", False)
    assert effective_state([stale], RULE) == ("given", True)
    with pytest.raises(ValueError):
        effective_state([yes], "unanimous")


def _family_of(school, size: int):
    pupils = [pupil_at(school) for _ in range(size)]
    for pupil in pupils:
        guardian_of(pupil)
        guardian_of(pupil, parental_responsibility=False)
    return pupils


def test_the_bulk_effective_state_costs_the_same_queries_for_5_and_50_pupils(personas):
    purpose = purpose_for(personas.school)
    notice = publish(purpose)
    few, many = _family_of(personas.school, 5), _family_of(personas.school, 50)
    for pupil in few + many:
        parent = pupil.guardianships.get(parental_responsibility=True).guardian
        consent_give(guardian=parent, pupil=pupil, notice=notice, attestation=True)

    with CaptureQueriesContext(connection) as for_few:
        states_few = pupils_consent_states(pupils=few, purpose=purpose)
    with CaptureQueriesContext(connection) as for_many:
        states_many = pupils_consent_states(pupils=many, purpose=purpose)

    assert len(for_few) == len(for_many) == 2
    assert len(states_many) == 50 and len(states_few) == 5
    assert all(s.state == ConsentState.GIVEN for s in states_many.values())


# --- The property --------------------------------------------------------------------------------

ACTIONS = ("give", "refuse", "withdraw", "staff_give", "staff_refuse", "staff_withdraw", "lapse")
steps = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=12
)


def _expected_effective(states: dict, has_pr: dict, pupil_index: int) -> str:
    mine = [(g, states[(g, pupil_index)]) for g in (0, 1)]
    if any(s == "refused" for _, s in mine):
        return "refused"
    if any(s == "withdrawn" for _, s in mine):
        return "withdrawn"
    if any(s == "given" and has_pr[(g, pupil_index)] for g, s in mine):
        return "given"
    if any(s == "lapsed" for _, s in mine):
        return "lapsed"
    return "none"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_folding_the_events_always_gives_the_status_rows_and_the_pupil_state_follows_the_rule(personas, steps):
    with transaction.atomic():
        _run(personas, steps)
        transaction.set_rollback(True)


def _run(personas, steps) -> None:
    school, office = personas.school, personas.office
    purpose = purpose_for(school)
    notice = publish(purpose)
    pupils = [pupil_at(school), pupil_at(school)]
    # Guardian 0 has parental responsibility for both; guardian 1 only for pupil 0 (a step-parent of 1).
    has_pr = {(0, 0): True, (0, 1): True, (1, 0): True, (1, 1): False}
    guardians = [guardian_of(*pupils)]
    guardians.append(guardian_of(pupils[0]))
    guardian_of(pupils[1], parental_responsibility=False, guardian=guardians[1])
    model = {(g, p): "none" for g in (0, 1) for p in (0, 1)}
    today = timezone.now().astimezone(school.tz).date()

    for action, g, p in steps:
        guardian, pupil = guardians[g], pupils[p]
        if action == "lapse":
            notice = publish(purpose, material_change=True, renewal_deadline=today, letter=f"v{notice.version + 1}")
            consent_lapse_due(now=timezone.now() + dt.timedelta(days=2))
            model = {key: "lapsed" if state == "given" else state for key, state in model.items()}
        else:
            kind = {"give": "given", "refuse": "refused", "withdraw": "withdrawn"}[action.removeprefix("staff_")]
            try:
                if action.startswith("staff_"):
                    consent_record_by_staff(staff=office, guardian=guardian, pupil=pupil, notice=notice, kind=kind,
                                            channel="paper_form", received_on=today, attestation=True)
                else:
                    service = {"given": consent_give, "refused": consent_refuse, "withdrawn": consent_withdraw}[kind]
                    service(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
            except ValidationError:
                assert kind == "given" and not has_pr[(g, p)]
            else:
                assert kind != "given" or has_pr[(g, p)]
                model[(g, p)] = kind
        _check(purpose, guardians, pupils, model, has_pr)


def _check(purpose, guardians, pupils, model, has_pr) -> None:
    effective = pupils_consent_states(pupils=pupils, purpose=purpose)
    for p, pupil in enumerate(pupils):
        for g, guardian in enumerate(guardians):
            events = ConsentEvent.objects.filter(guardian=guardian, pupil=pupil, purpose=purpose).order_by("id")
            status = ConsentStatus.objects.filter(guardian=guardian, pupil=pupil, purpose=purpose).first()
            stored = status.state if status else ConsentState.NONE
            assert fold_events(events) == stored == model[(g, p)]
            if status is not None:
                assert status.last_event == events.last()
        assert effective[pupil.pk].state == _expected_effective(model, has_pr, p)
