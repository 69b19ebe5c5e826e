"""The fixed parts of the PIA form, worded as in the seed (the ICO's method): the eight screening questions,
the steps, and the questions linking the PIA to the six GDPR principles.

Answers are stored by key (`PiaVersion.screening`, `PiaVersion.principles`); the keys never change, the
wording may be improved.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    key: str
    text: str


SCREENING: tuple[Question, ...] = (
    Question("new_information", "Will the project involve the collection of new information about individuals?"),
    Question("compelled", "Will the project compel individuals to provide information about themselves?"),
    Question("new_disclosure", "Will information about individuals be disclosed to organisations or people who "
                               "have not previously had routine access to the information?"),
    Question("new_purpose", "Are you using information about individuals for a purpose it is not currently used "
                            "for, or in a way it is not currently used?"),
    Question("intrusive_technology", "Does the project involve you using new technology that might be perceived "
                                     "as being privacy intrusive? For example, the use of biometrics or facial "
                                     "recognition."),
    Question("significant_decisions", "Will the project result in you making decisions or taking action against "
                                      "individuals in ways that can have a significant impact on them?"),
    Question("sensitive_information", "Is the information about individuals of a kind particularly likely to "
                                      "raise privacy concerns or expectations? For example, health records, "
                                      "criminal records or other information that people would consider to be "
                                      "private."),
    Question("intrusive_contact", "Will the project require you to contact individuals in ways that they may "
                                  "find intrusive?"),
)


def screening_recommends_pia(screening: dict) -> bool:
    """Any "yes" is an indication that a PIA would be a useful exercise."""
    return any((screening.get(q.key) or {}).get("answer") == "yes" for q in SCREENING)


def screening_complete(screening: dict) -> bool:
    return all((screening.get(q.key) or {}).get("answer") in ("yes", "no") for q in SCREENING)


@dataclass(frozen=True)
class Step:
    key: str
    number: str  # as the form numbers it ("1", "2", "" for the unnumbered parts)
    title: str


# In the form's order; the DPO comments per step by these keys, and the progress bar counts them.
STEPS: tuple[Step, ...] = (
    Step("screening", "", "Screening questions"),
    Step("need", "1", "Identify the need for a PIA"),
    Step("flows", "2", "Describe the information flows"),
    Step("consultation", "", "Consultation"),
    Step("risks", "3", "Identify the privacy and related risks"),
    Step("solutions", "4", "Identify privacy solutions"),
    Step("signoff", "5", "Sign off and record the PIA outcomes"),
    Step("actions", "6", "Integrate the PIA outcomes back into the project plan"),
    Step("principles", "", "Linking the PIA to the GDPR principles"),
)
STEP_KEYS = tuple(step.key for step in STEPS)


@dataclass(frozen=True)
class Principle:
    number: int
    title: str
    summary: str
    questions: tuple[Question, ...]


PRINCIPLES: tuple[Principle, ...] = (
    Principle(1, "Lawfulness, fairness and transparency",
              "Tell the subject what data processing will be done; what is processed must match how it has "
              "been described; processing must meet the tests described in GDPR article 5(1)(a).", (
                  Question("p1_purpose", "Have you identified the purpose of the project?"),
                  Question("p1_tell", "How will you tell individuals about the use of their personal data?"),
                  Question("p1_notices", "Do you need to amend your privacy notices?"),
                  Question("p1_conditions", "Have you established which conditions for processing apply?"),
                  Question("p1_consent", "If you are relying on consent to process personal data, how will this "
                                         "be collected, and what will you do if it is withheld or withdrawn?"),
                  Question("p1_article8", "Will your actions interfere with the right to privacy under "
                                          "Article 8 of the Human Rights Act?"),
                  Question("p1_social_need", "Have you identified the social need and aims of the project?"),
                  Question("p1_proportionate", "Are your actions a proportionate response to the social need?"),
              )),
    Principle(2, "Purpose limitation",
              "Personal data can only be obtained for specified, explicit and legitimate purposes "
              "(article 5(1)(b)).", (
                  Question("p2_all_purposes", "Does your project plan cover all of the purposes for processing "
                                              "personal data?"),
                  Question("p2_new_purposes", "Have you identified potential new purposes as the scope of the "
                                              "project expands?"),
              )),
    Principle(3, "Data minimisation",
              "Data collected must be adequate, relevant and limited to what is necessary (article 5(1)(c)).", (
                  Question("p3_quality", "Is the quality of the information good enough for the purposes it is "
                                         "used?"),
                  Question("p3_not_needed", "Which personal data could you not use, without compromising the needs "
                                            "of the project?"),
              )),
    Principle(4, "Accuracy",
              "Data must be accurate and where necessary kept up to date (article 5(1)(d)).", (
                  Question("p4_amend", "If you are procuring new software does it allow you to amend data when "
                                       "necessary?"),
                  Question("p4_accurate", "How are you ensuring that personal data obtained from individuals or "
                                          "other organisations is accurate?"),
              )),
    Principle(5, "Storage limitation",
              "Data must be kept in a form which permits identification for no longer than necessary "
              "(article 5(1)(e)).", (
                  Question("p5_retention", "What retention periods are suitable for the personal data you will be "
                                           "processing?"),
                  Question("p5_delete", "Are you procuring software that will allow you to delete information in "
                                        "line with your retention periods?"),
              )),
    Principle(6, "Integrity and confidentiality",
              "Data must be handled with appropriate security, including protection against unlawful processing "
              "or accidental loss, destruction or damage (article 5(1)(f)).", (
                  Question("p6_protection", "Do any new systems provide protection against the security risks you "
                                            "have identified?"),
                  Question("p6_training", "What training and instructions are necessary to ensure that staff know "
                                          "how to operate a new system securely?"),
              )),
)
PRINCIPLE_QUESTIONS: tuple[Question, ...] = tuple(q for p in PRINCIPLES for q in p.questions)
