"""The PIA pages: the register, a new PIA with its screening, the version overview and every step's page."""

import datetime as dt
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from pia import seed_template
from pia.editing import pia_create
from pia.models import Action, Decision, Pia, PiaVersion, PrivacyRisk
from pia.questions import PRINCIPLE_QUESTIONS, SCREENING, STEPS
from pia.snapshot import snapshot_of
from tests.factories import PupilFactory, SchoolFactory
from tests.pia.pia_setup import draft_pia

pytestmark = pytest.mark.django_db


class _FormReader(HTMLParser):
    """The fields of the first form with `marker` in its class, as a browser would post them untouched."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker, self.inside, self.data = marker, False, {}
        self._textarea = self._select = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.marker in (attrs.get("class") or ""):
            self.inside = True
        if not self.inside:
            return
        name = attrs.get("name")
        if tag == "input" and name:
            kind = attrs.get("type", "text")
            if kind in ("radio", "checkbox"):
                if "checked" in attrs:
                    self.data[name] = attrs.get("value", "on")
            elif kind not in ("submit", "button"):
                self.data[name] = attrs.get("value") or ""
        elif tag == "textarea":
            self._textarea = name
            self.data[name] = ""
        elif tag == "select":
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in attrs:
            self.data[self._select] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data.removeprefix("\n") if not self.data[self._textarea] else data


def _form_data(response, marker="pia-step-form") -> dict:
    reader = _FormReader(marker)
    reader.feed(response.content.decode())
    reader.data.pop("csrfmiddlewaretoken", None)
    return reader.data


def _step_url(version, step):
    return reverse("pia:step", kwargs={"pk": version.pk, "step": step})


def _template_version(p, **kwargs) -> PiaVersion:
    return pia_create(organisation=p.organisation, school=p.school, actor=p.headteacher, title="Zoom",
                      from_template=True, screening=seed_template.SCREENING, **kwargs)


def _set_status(version, status):
    PiaVersion.objects.filter(pk=version.pk).update(status=status)
    version.refresh_from_db()
    return version


def _screening_post(answers, **extra) -> dict:
    data = {f"answer_{q.key}": answer for q, answer in zip(SCREENING, answers, strict=True) if answer}
    data.update({f"note_{q.key}": "" for q in SCREENING})
    return {"title": "Zoom", "start": "template", **data, **extra}


# --- A new PIA ----------------------------------------------------------------------------------------------


def test_new_page_asks_the_eight_screening_questions_first(client_for, personas):
    response = client_for(personas.office).get(reverse("pia:new"))

    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('data-screening-answer') == 16
    assert page.index("Screening questions") < page.index("The project")


def test_any_yes_recommends_a_pia_and_creates_it_from_the_template(client_for, personas):
    client = client_for(personas.headteacher)
    data = _screening_post(["yes", "no", "no", "no", "no", "no", "no", "no"], where=str(personas.school.pk))

    response = client.post(reverse("pia:new"), data, follow=True)

    version = PiaVersion.objects.get()
    assert response.redirect_chain[-1][0] == reverse("pia:version", kwargs={"pk": version.pk})
    assert "The screening recommends a PIA (1 of 8 answers are yes)" in response.content.decode()
    assert version.risks.count() == 6 and version.pia.school == personas.school


def test_all_no_says_a_pia_is_not_indicated_and_creates_nothing_without_confirmation(client_for, personas):
    client = client_for(personas.headteacher)
    data = _screening_post(["no"] * 8, where=str(personas.school.pk))

    response = client.post(reverse("pia:new"), data)

    assert response.status_code == 200
    assert "A PIA is not indicated" in response.content.decode()
    assert not Pia.objects.exists()

    response = client.post(reverse("pia:new"), {**data, "confirm_not_indicated": "on", "start": "blank"}, follow=True)
    assert "did not indicate a PIA" in response.content.decode()
    version = PiaVersion.objects.get()
    assert not version.risks.exists()


def test_an_unanswered_screening_question_creates_nothing(client_for, personas):
    data = _screening_post(["yes"] * 7 + [None], where=str(personas.school.pk))

    response = client_for(personas.headteacher).post(reverse("pia:new"), data)

    assert response.status_code == 200
    assert "Answer yes or no." in response.content.decode()
    assert not Pia.objects.exists()


def test_the_new_page_offers_only_the_authors_own_schools_and_their_organisation(client_for, personas):
    data = _screening_post(["yes"] * 8, where=str(personas.other_school.pk))

    response = client_for(personas.headteacher).post(reverse("pia:new"), data)

    assert response.status_code == 200 and not Pia.objects.exists()
    assert f"organisation-{personas.organisation.pk}" in response.content.decode()


# --- The register -------------------------------------------------------------------------------------------


def test_the_register_lists_pias_with_status_review_date_and_out_of_date_badge(client_for, personas):
    draft_pia(personas.organisation, personas.headteacher, school=personas.school, title="Teams")
    old = draft_pia(personas.organisation, personas.headteacher, title="Zoom",
                    review_on=timezone.localdate() + dt.timedelta(days=1))
    PiaVersion.objects.filter(pk=old.pk).update(status="signed", review_on=timezone.localdate() - dt.timedelta(days=1))
    draft_pia(personas.other_school.organisation, personas.other_headteacher, school=personas.other_school,
              title="Elsewhere")

    page = client_for(personas.dpo).get(reverse("pia:list")).content.decode()

    assert "Teams" in page and "Zoom" in page and "Elsewhere" not in page
    assert "Test Federation (organisation-wide)" in page
    assert page.count("pia-out-of-date") == 1
    assert "Draft" in page and "Signed" in page


def test_the_register_searches_titles_and_filters_by_status(client_for, personas):
    draft_pia(personas.organisation, personas.headteacher, school=personas.school, title="Teams")
    signed = draft_pia(personas.organisation, personas.headteacher, school=personas.school, title="Zoom")
    _set_status(signed, "signed")
    client = client_for(personas.headteacher)

    by_title = client.get(reverse("pia:list"), {"q": "zoo"}).content.decode()
    by_status = client.get(reverse("pia:list"), {"status": "draft"}).content.decode()
    nothing = client.get(reverse("pia:list"), {"q": "webex"}).content.decode()

    assert "Zoom" in by_title and "Teams" not in by_title
    assert "Teams" in by_status and ">Zoom<" not in by_status
    assert "No PIAs match" in nothing


def test_the_register_filters_by_school_keeping_organisation_wide_pias(client_for, personas):
    sister = SchoolFactory(organisation=personas.organisation, name="Dhoon Test School")
    draft_pia(personas.organisation, personas.headteacher, school=sister, title="Sister's")
    draft_pia(personas.organisation, personas.headteacher, title="Federation's")
    draft_pia(personas.organisation, personas.headteacher, school=personas.school, title="Laxey's")

    page = client_for(personas.dpo).get(reverse("pia:list"), {"school": personas.school.pk}).content.decode()

    assert "Laxey&#x27;s" in page and "Federation&#x27;s" in page and "Sister&#x27;s" not in page


def test_a_teacher_sees_only_pias_with_a_signed_version(client_for, personas):
    draft_pia(personas.organisation, personas.headteacher, school=personas.school, title="Teams")
    _set_status(draft_pia(personas.organisation, personas.headteacher, school=personas.school, title="Zoom"),
                "signed")

    page = client_for(personas.teacher).get(reverse("pia:list")).content.decode()

    assert "Zoom" in page and "Teams" not in page
    assert "New PIA" not in page


def test_the_register_is_paginated(client_for, personas):
    for number in range(27):
        draft_pia(personas.organisation, personas.headteacher, school=personas.school, title=f"Platform {number:02d}")
    client = client_for(personas.headteacher)

    first = client.get(reverse("pia:list")).content.decode()
    second = client.get(reverse("pia:list"), {"page": 2}).content.decode()

    assert "Page 1 of 2" in first and "Platform 00" in first and "Platform 26" not in first
    assert "Platform 26" in second


def test_an_empty_register_invites_authors_to_start(client_for, personas):
    page = client_for(personas.office).get(reverse("pia:list")).content.decode()

    assert "No privacy impact assessments yet" in page and reverse("pia:new") in page


def test_the_menu_links_the_register_for_everyone(client_for, personas):
    page = client_for(personas.teacher).get(reverse("schools:dashboard")).content.decode()

    assert reverse("pia:list") in page and "Privacy (PIA)" in page


# --- A PIA and its version ----------------------------------------------------------------------------------


def test_a_pia_opens_its_latest_version_or_for_a_teacher_its_signed_one(client_for, personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    _set_status(version, "signed")
    draft = PiaVersion.objects.create(pia=version.pia, number=2, created_by=personas.headteacher,
                                      matrix=version.matrix)

    as_head = client_for(personas.headteacher).get(reverse("pia:pia", kwargs={"pk": version.pia_id}))
    as_teacher = client_for(personas.teacher).get(reverse("pia:pia", kwargs={"pk": version.pia_id}))

    assert as_head["Location"] == reverse("pia:version", kwargs={"pk": draft.pk})
    assert as_teacher["Location"] == reverse("pia:version", kwargs={"pk": version.pk})


def test_the_overview_shows_every_step_and_the_progress(client_for, personas):
    version = _template_version(personas)

    page = client_for(personas.dpo).get(reverse("pia:version", kwargs={"pk": version.pk})).content.decode()

    for step in STEPS:
        assert f'id="step-{step.key}"' in page
    assert "Information that identifies you" in page and "Zoombombing" in page
    assert "Staff meeting" in page and "Letter to parents" in page
    assert page.count("(complete)") == 8 and page.count("(not complete yet)") == 1
    assert "A PIA is recommended" in page
    assert "Edit the title and details" not in page  # the DPO reads, the authors edit


def test_the_overview_shows_the_dpos_comments_beside_their_steps(client_for, personas):
    version = _set_status(_template_version(personas), "changes_requested")
    Decision.objects.create(version=version, kind=Decision.Kind.CHANGES_REQUESTED, user=personas.dpo,
                            name="Dee Pio", role="DPO", comments="Nearly there.", sha256="0" * 64,
                            step_comments={"flows": "Say how long recordings are kept.", "risks": ""})

    page = client_for(personas.office).get(reverse("pia:version", kwargs={"pk": version.pk})).content.decode()

    assert "The DPO asked for changes" in page
    flows = page[page.index('id="step-flows"'):page.index('id="step-consultation"')]
    assert "Say how long recordings are kept." in flows
    step_page = client_for(personas.office).get(_step_url(version, "flows")).content.decode()
    assert "Say how long recordings are kept." in step_page


def test_a_teacher_reads_a_signed_version_but_not_a_draft(client_for, personas):
    draft = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    signed = _set_status(draft_pia(personas.organisation, personas.headteacher, school=personas.school), "signed")
    client = client_for(personas.teacher)

    assert client.get(reverse("pia:version", kwargs={"pk": draft.pk})).status_code == 403
    assert client.get(_step_url(draft, "risks")).status_code == 403
    assert client.get(reverse("pia:version", kwargs={"pk": signed.pk})).status_code == 200
    page = client.get(_step_url(signed, "risks")).content.decode()
    assert "read-only" in page and "pia-step-form" not in page


# --- The step pages -----------------------------------------------------------------------------------------


def test_the_screening_step_saves_its_answers(client_for, personas):
    version = _template_version(personas)
    client = client_for(personas.office)
    data = _form_data(client.get(_step_url(version, "screening")))
    data["answer_intrusive_technology"] = "yes"
    data["note_intrusive_technology"] = "Cameras at home"

    response = client.post(_step_url(version, "screening"), {**data, "then": "next"})

    assert response["Location"] == _step_url(version, "need")
    version.refresh_from_db()
    assert version.screening["intrusive_technology"] == {"answer": "yes", "note": "Cameras at home"}


def test_the_need_step_saves_its_texts_and_data_inventory_rows(client_for, personas):
    version = _template_version(personas)
    client = client_for(personas.headteacher)
    data = _form_data(client.get(_step_url(version, "need")))
    data["aims"] = "Live lessons for small groups."
    data["rows-0-DELETE"] = "on"
    data["rows-7-data_type"] = "Recordings"
    data["rows-7-ORDER"] = "1"

    client.post(_step_url(version, "need"), data)

    version.refresh_from_db()
    assert version.aims == "Live lessons for small groups."
    types = list(version.data_items.order_by("position").values_list("data_type", flat=True))
    assert types[0] == "Recordings" and "Information that identifies you" not in types and len(types) == 7


def test_the_flows_step_shows_the_number_affected_computed_not_typed(client_for, personas):
    version = _template_version(personas)
    PupilFactory.create_batch(2, school=personas.school)
    PupilFactory(school=personas.school, left_on=dt.date(2026, 1, 1))
    client = client_for(personas.headteacher)

    response = client.get(_step_url(version, "flows"))

    page = response.content.decode()
    assert "2 children" in page and 'name="number_affected"' not in page
    data = _form_data(response)
    data["deletion"] = "At the end of each term."
    client.post(_step_url(version, "flows"), {**data, "number_affected": "999"})
    version.refresh_from_db()
    assert version.deletion == "At the end of each term."
    assert "999" not in str(snapshot_of(version))


def test_the_consultation_step_saves_texts_and_dated_entries(client_for, personas):
    version = _template_version(personas)
    client = client_for(personas.headteacher)
    data = _form_data(client.get(_step_url(version, "consultation")))
    data.update({"internal_consultees": "All staff.", "rows-6-kind": "external", "rows-6-held_on": "2026-03-02",
                 "rows-6-description": "Parents' forum"})

    client.post(_step_url(version, "consultation"), data)

    version.refresh_from_db()
    assert version.internal_consultees == "All staff."
    assert version.consultations.filter(description="Parents' forum", held_on=dt.date(2026, 3, 2)).exists()
    assert version.consultations.count() == 7


def test_the_risks_step_computes_the_rating_and_ignores_a_typed_one(client_for, personas):
    version = _template_version(personas)
    client = client_for(personas.headteacher)
    data = _form_data(client.get(_step_url(version, "risks")))
    data.update({"rows-0-likelihood": "3", "rows-0-severity": "3", "rows-0-rating": "1",
                 "rows-6-privacy_issue": "Recordings kept by the platform", "rows-6-likelihood": "1",
                 "rows-6-severity": "2", "rows-6-rating": "9"})

    client.post(_step_url(version, "risks"), data)

    risks = list(version.risks.order_by("position"))
    assert (risks[0].likelihood, risks[0].severity, risks[0].rating) == (3, 3, 9)
    assert risks[-1].privacy_issue == "Recordings kept by the platform" and risks[-1].rating == 2
    page = client.get(_step_url(version, "risks")).content.decode()
    assert "9 High" in page


def test_a_score_off_the_matrix_changes_nothing_and_says_so(client_for, personas):
    version = _template_version(personas)
    client = client_for(personas.headteacher)
    data = _form_data(client.get(_step_url(version, "risks")))
    before = snapshot_of(version)
    data.update({"rows-0-likelihood": "7", "rows-1-privacy_issue": "Changed too"})

    response = client.post(_step_url(version, "risks"), data)

    assert response.status_code == 200
    assert "Nothing was saved" in response.content.decode()
    assert snapshot_of(PiaVersion.objects.get(pk=version.pk)) == before


def test_the_solutions_step_saves_each_risks_solution(client_for, personas):
    version = _template_version(personas)
    client = client_for(personas.headteacher)
    response = client.get(_step_url(version, "solutions"))
    assert "Risk 6: Zoombombing" in response.content.decode()
    data = _form_data(response)
    data.update({"rows-0-solution": "Only the school's accounts.", "rows-0-result": "reduced"})

    client.post(_step_url(version, "solutions"), data)

    first = version.risks.order_by("position").first()
    assert (first.solution, first.result) == ("Only the school's accounts.", "reduced")
    assert version.risks.count() == 6


def test_the_signoff_step_shows_the_approved_solutions_and_decisions_read_only(client_for, personas):
    version = _template_version(personas)
    client = client_for(personas.headteacher)

    page = client.get(_step_url(version, "signoff")).content.decode()

    assert "Approved solutions" in page and "No decisions yet" in page and "pia-step-form" not in page
    response = client.post(_step_url(version, "signoff"), {}, follow=True)
    assert "nothing to save here" in response.content.decode()


def test_the_actions_step_saves_actions_and_offers_only_the_organisations_staff(client_for, personas):
    version = _template_version(personas)
    client = client_for(personas.headteacher)
    response = client.get(_step_url(version, "actions"))
    page = response.content.decode()
    assert f'value="{personas.office.pk}"' in page and f'value="{personas.dpo.pk}"' in page
    assert f'value="{personas.other_teacher.pk}"' not in page
    data = _form_data(response)
    data.update({"contact_point": "The headteacher.", "rows-0-due_on": "2026-09-01",
                 "rows-0-responsible_user": str(personas.office.pk)})

    client.post(_step_url(version, "actions"), data)

    version.refresh_from_db()
    first = version.actions.order_by("position").first()
    assert version.contact_point == "The headteacher."
    assert (first.due_on, first.responsible_user) == (dt.date(2026, 9, 1), personas.office)

    data["rows-0-responsible_user"] = str(personas.other_teacher.pk)
    response = client.post(_step_url(version, "actions"), data)
    assert "Nothing was saved" in response.content.decode()
    assert Action.objects.get(pk=first.pk).responsible_user == personas.office


def test_the_principles_step_asks_every_question_of_the_six_principles(client_for, personas):
    version = _template_version(personas)
    client = client_for(personas.headteacher)
    response = client.get(_step_url(version, "principles"))
    page = response.content.decode()
    for number in range(1, 7):
        assert f"Principle {number}:" in page
    data = _form_data(response)
    assert {key for key in data if key.startswith("p")} == {q.key for q in PRINCIPLE_QUESTIONS}
    data["p5_retention"] = "Deleted the August after a pupil leaves."

    client.post(_step_url(version, "principles"), data)

    version.refresh_from_db()
    assert version.principles["p5_retention"] == "Deleted the August after a pupil leaves."
    assert version.principles["p1_purpose"] == seed_template.PRINCIPLES["p1_purpose"]


def test_the_details_page_changes_the_title_and_review_date(client_for, personas):
    version = _template_version(personas)
    client = client_for(personas.office)
    review_on = timezone.localdate() + dt.timedelta(days=300)

    client.post(reverse("pia:details", kwargs={"pk": version.pk}),
                {"title": "Zoom 2026", "division": "Laxey", "lead_officer": "Headteacher",
                 "review_on": review_on.isoformat()})

    version.refresh_from_db()
    assert version.pia.title == "Zoom 2026" and version.review_on == review_on
    response = client.post(reverse("pia:details", kwargs={"pk": version.pk}), {"title": ""})
    assert "Nothing was saved" in response.content.decode()


@pytest.mark.parametrize("status", ["submitted", "advised", "decided", "signed", "superseded"])
@pytest.mark.parametrize("step", ["screening", "need", "flows", "consultation", "risks", "solutions", "actions",
                                  "principles"])
def test_a_version_out_of_the_authors_hands_refuses_every_step_post_with_a_message(client_for, personas, status,
                                                                                    step):
    version = _template_version(personas)
    client = client_for(personas.headteacher)
    data = _form_data(client.get(_step_url(version, step)))
    _set_status(version, status)
    before = snapshot_of(version)
    for name in data:
        if name.endswith(("aims", "description", "solution", "action", "privacy_issue", "p1_purpose")):
            data[name] = "Changed after submission"

    response = client.post(_step_url(version, step), data, follow=True)

    assert response.status_code == 200
    assert "Nothing was saved" in response.content.decode()
    assert snapshot_of(PiaVersion.objects.get(pk=version.pk)) == before


def test_the_details_page_refuses_a_submitted_version(client_for, personas):
    version = _set_status(_template_version(personas), "submitted")

    response = client_for(personas.headteacher).post(reverse("pia:details", kwargs={"pk": version.pk}),
                                                      {"title": "Changed"}, follow=True)

    assert "Nothing can be changed" in response.content.decode()
    assert Pia.objects.get().title == "Zoom"


def test_the_dpo_reads_a_step_but_cannot_post_it(client_for, personas):
    version = _template_version(personas)
    client = client_for(personas.dpo)

    page = client.get(_step_url(version, "need")).content.decode()
    response = client.post(_step_url(version, "need"), {"aims": "The DPO's aims"})

    assert "only the headteacher or the office of the school edit it" in page
    assert response.status_code == 403
    assert PiaVersion.objects.get(pk=version.pk).aims != "The DPO's aims"


def test_an_unknown_step_is_not_found(client_for, personas):
    version = _template_version(personas)

    assert client_for(personas.headteacher).get(_step_url(version, "step-seven")).status_code == 404


def test_every_step_page_links_the_previous_and_next_step(client_for, personas):
    version = _template_version(personas)
    client = client_for(personas.headteacher)

    for index, step in enumerate(STEPS):
        page = client.get(_step_url(version, step.key)).content.decode()
        if index:
            assert f"Previous: {STEPS[index - 1].title}" in page
        if index + 1 < len(STEPS):
            assert f"Next: {STEPS[index + 1].title}" in page
        assert 'aria-current="step"' in page


def test_a_risk_added_on_the_page_gets_its_solution_row(client_for, personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    client = client_for(personas.headteacher)
    data = _form_data(client.get(_step_url(version, "risks")))
    data.update({"rows-1-privacy_issue": "Chat logs", "rows-1-likelihood": "2", "rows-1-severity": "1"})
    client.post(_step_url(version, "risks"), data)

    page = client.get(_step_url(version, "solutions")).content.decode()

    assert PrivacyRisk.objects.filter(version=version).count() == 2
    assert "Risk 2: Chat logs" in page


def test_a_signed_version_shows_the_figures_and_advice_it_was_signed_with(client_for, personas):
    from tests.pia.pia_signed import signed_pia

    PupilFactory.create_batch(2, school=personas.school)
    version = signed_pia(personas)
    PupilFactory.create_batch(5, school=personas.school)  # joined after signing
    client = client_for(personas.teacher)

    page = client.get(reverse("pia:version", kwargs={"pk": version.pk})).content.decode()
    flows = client.get(_step_url(version, "flows")).content.decode()
    signoff = client.get(_step_url(version, "signoff")).content.decode()

    assert "2 children" in page and "as counted when the version was signed" in page and "7 children" not in page
    risks = page[page.index('id="step-risks"'):page.index('id="step-solutions"')]
    assert "The ratings are reasonable." in risks
    assert "2 children" in flows and "read-only" in flows
    assert "Signed by the SIRO" in signoff and version.decisions.last().sha256 in signoff


def test_a_teacher_filtering_signed_pias_finds_one_whose_revision_is_under_way(client_for, personas):
    signed = _set_status(draft_pia(personas.organisation, personas.headteacher, school=personas.school), "signed")
    PiaVersion.objects.create(pia=signed.pia, number=2, created_by=personas.headteacher, matrix=signed.matrix)
    federation = _set_status(draft_pia(personas.organisation, personas.headteacher, title="Federation"), "signed")
    draft_pia(personas.organisation, personas.headteacher, title="Federation draft")

    as_teacher = client_for(personas.teacher).get(reverse("pia:list"), {"status": "signed"}).content.decode()
    as_head = client_for(personas.headteacher).get(reverse("pia:list"), {"status": "signed"}).content.decode()

    assert f'data-pia="{signed.pia_id}"' in as_teacher and f'data-pia="{federation.pia_id}"' in as_teacher
    assert "Federation draft" not in as_teacher
    assert f'data-pia="{signed.pia_id}"' not in as_head  # the headteacher sees its current version, a draft
