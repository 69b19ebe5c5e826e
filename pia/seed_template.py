"""The seed's "Privacy impact assessment – using Zoom to deliver video-conferencing in real time with pupils"
(a federation of two schools, May 2020) as the template that "New PIA from template" starts from.

The seed's Zoom data table came out of a scan garbled; here it is as the rows it meant (type of data, examples,
what Zoom uses it for). The seed does not score its risks: the scores below are on the seed's 3 × 3 matrix
(likelihood remote 1 / possible 2 / probable 3; severity minor 1 / serious 2 / severe 3) and are placed on the
organisation's matrix when a PIA is created (`pia.editing.scaled`). The sixth solution (Zoombombing) is written
from the school's protocol, as the seed lists the risk but gives it no solution. People are named by role only.
"""

import datetime as dt

TITLE = "Zoom for live video lessons with pupils"
LEAD_OFFICER = "Executive headteacher"

# The seed's answers: Y, Y, Y, Y, N, N, N, N (pia.questions.SCREENING keys).
SCREENING: dict[str, dict[str, str]] = {
    "new_information": {"answer": "yes", "note": "Pupils' names, images and voices on the platform."},
    "compelled": {"answer": "yes", "note": "Pupils sign in to take part in the lessons."},
    "new_disclosure": {"answer": "yes", "note": "The platform's provider receives account and usage data."},
    "new_purpose": {"answer": "yes", "note": "Remote lessons and assemblies are a new way of teaching."},
    "intrusive_technology": {"answer": "no", "note": ""},
    "significant_decisions": {"answer": "no", "note": ""},
    "sensitive_information": {"answer": "no", "note": "No sensitive information is discussed in sessions."},
    "intrusive_contact": {"answer": "no", "note": ""},
}

# Step one.
NEED: dict[str, str] = {
    "aims": "Implement Zoom based learning using breakout sessions and meetings for online sessions, including "
            "remote assemblies.",
    "benefits_organisation": "Allows direct contact with data subjects – children, young people and students.",
    "benefits_individuals": "Continuation of the learning experience.",
    "benefits_others": "Educational development continues.",
    "related_documents": "https://zoom.us/privacy\n"
                         "The platform's data transfer certification (the seed cites the Privacy Shield entry).\n"
                         "The risk assessment and protocol for live video lessons, amended as needed.",
    "need_reason": "Zoom raises a series of issues from a privacy perspective as well as security issues: "
                   "information is currently routed through servers outside the British Isles and the EU.",
}

# The platform's data inventory (the seed's Zoom table, cleaned up).
DATA_ITEMS: list[dict[str, str]] = [
    {
        "data_type": "Information that identifies you",
        "examples": "For customers: account owner name, billing name and address, payment method. Your name, "
                    "username and email address, or phone number, when you use this information to access or "
                    "use the service. The phone number a Zoom Phone user dials.",
        "platform_uses": "Create a customer account; provide Zoom services; communicate with a customer; respond "
                         "to requests for support.",
    },
    {
        "data_type": "Other account data",
        "examples": "Your phone number (if you choose to put it in), language preference, password (if SSO is "
                    "not used), title, department.",
        "platform_uses": "Create a customer account; provide Zoom services.",
    },
    {
        "data_type": "Customer content: information you or others upload, provide, or create while using Zoom",
        "examples": "Cloud recordings, chat / instant messages, files, whiteboards and other information shared "
                    "while using the service; voice mails.",
        "platform_uses": "Store chat logs (for delivery, and so you can review and search chat history); store "
                         "recordings, if explicitly requested by the host or customer; store voice mail for Zoom "
                         "Phone.",
    },
    {
        "data_type": "Technical information about your devices, network, and internet connection",
        "examples": "IP address, MAC address, other device ID (UDID), device type, operating system type and "
                    "version, client version, type of camera, microphone or speakers, connection type. The phone "
                    "number of a person making a call using Zoom services (e.g. Zoom Phone).",
        "platform_uses": "Connect you to and optimise your experience using the service; provide customers "
                         "dashboards and reports; respond to requests for support; monitor performance of its data "
                         "centres and networks; conduct anonymised, aggregated analytics to improve performance.",
    },
    {
        "data_type": "Approximate location",
        "examples": "To the nearest city (Zoom says it does not \u201ctrack\u201d your specific location).",
        "platform_uses": "Connect you to the nearest data centre; comply with privacy and other laws (for example, "
                         "to give you the right notices for your area); suggest choices such as language "
                         "preferences; monitor performance of its data centres and networks.",
    },
    {
        "data_type": "Information about how you use Zoom (not the information or content you share in your "
                     "meetings or in chats)",
        "examples": "Did you use VoIP or a phone call? Did you shift from the mobile client to the desktop? Did you "
                    "join with video off, require a meeting password, enable the waiting room, allow screen "
                    "sharing by the host only?",
        "platform_uses": "Respond to requests for support; optimise your Zoom experience; conduct anonymised, "
                         "aggregated analytics to improve performance; give you choices for how you use Zoom.",
    },
    {
        "data_type": "Metadata",
        "examples": "Duration of the meeting / Zoom Phone call; the email address, name or other information a "
                    "participant enters to identify themselves in the meeting; join and leave times of "
                    "participants; name of the meeting; date and time the meeting was scheduled; chat status "
                    "(unless a setting is actively chosen by the user); call data records for Zoom Phone.",
        "platform_uses": "Provide Zoom services; provide customers dashboards and reports; respond to requests for "
                         "support.",
    },
]

# Step two.
FLOWS: dict[str, str] = {
    "collection": "Only with consent and agreement should people sign up to this service. People will need to sign "
                  "on themselves, recognising the risks around data sharing with Zoom.",
    "use": "Online learning sessions only – no sensitive information should be discussed. People also need to be "
           "aware that \u201cZoombombing\u201d is a possibility and that appropriate passwords, procedures and "
           "security will be required, but may not completely protect against this risk.",
    "deletion": "Data will be deleted at the end of use, and certainly in the August following a pupil's leaving "
                "school, if not before.",
    "flow_description": "Parents give consent → the school sends the meeting link and password to the parent's "
                        "email → the pupil joins through the waiting room and is admitted by the host → video, "
                        "audio and chat pass through Zoom's servers during the lesson → nothing is recorded; account "
                        "data stays with Zoom until the account is deleted.",
}

# Consultation.
CONSULTATION: dict[str, str] = {
    "risks_identified": "Risks identified: servers based in China; Zoombombing; data shared with Zoom; encryption "
                        "not end to end; password protecting meetings.",
    "risks_addressed": "People need to be made aware of what having servers in China means in terms of "
                       "monitoring.\n"
                       "Protective measures reduce the risk of \u201cZoombombing\u201d: meetings are password "
                       "protected and the link is sent out and not shared.\n"
                       "Updated apps and software need to be used – again, this needs to be highlighted to data "
                       "subjects and their parents.\n"
                       "No sensitive information should be discussed using this service.\n"
                       "Links and passwords should not be shared widely.",
    "internal_consultees": "Federation teaching staff.",
    "external_consultees": "Headteachers at Kewaigue, Sulby and RGS (already using Zoom with pupils).\n"
                           "Parents, by letter – sharing the protocol and the requirement for explicit consent.\n"
                           "The DESC Data Protection Officer (Legal and Admin Manager).",
    "consultation_method": "Consultation with staff to discuss feasibility.\n"
                           "Consultation with parents to seek interest and subsequent permission.\n"
                           "Consultation with the Data Protection Officer.",
}

CONSULTATIONS: list[dict] = [
    {"kind": "internal", "held_on": dt.date(2020, 5, 19), "description": "Staff meeting"},
    {"kind": "internal", "held_on": dt.date(2020, 5, 20),
     "description": "Email exchange with the headteacher at RGS (already using Zoom with pupils)"},
    {"kind": "internal", "held_on": dt.date(2020, 5, 21),
     "description": "Meeting with the headteacher of Sulby School"},
    {"kind": "internal", "held_on": dt.date(2020, 5, 22), "description": "Senior leadership team meeting"},
    {"kind": "external", "held_on": dt.date(2020, 5, 21),
     "description": "Email exchange with the DESC Data Protection Officer"},
    {"kind": "external", "held_on": dt.date(2020, 5, 25), "description": "Letter to parents"},
]

_DPA_COMPLIANCE = "Non-compliance with data protection law."
_DPA_CORPORATE = ("Non-compliance with data protection or other legislation can lead to sanctions, fines and "
                  "reputational damage.")
_THEIR_CHOICE = "Accepted: the person using the service either accepts this or not – it is their choice."
_PROPORTIONATE = ("Proportionate – data subjects should not suffer detriment through not using this service if they "
                  "choose.")

# Steps three and four. Scores on the seed's 3 × 3 matrix.
RISKS: list[dict] = [
    {
        "privacy_issue": "Disclosure of personally identifiable information (PII).",
        "risk_to_individuals": "Information shared with third parties, e.g. Zoom.",
        "compliance_risk": _DPA_COMPLIANCE,
        "organisational_risk": _DPA_CORPORATE,
        "likelihood": 2, "severity": 2,
        "solution": "Up to date software should be installed. Data subjects to be informed that this is a "
                    "possibility.",
        "result": "accepted",
        "evaluation": "Proportionate – data subjects should not suffer detriment through not using this service.",
    },
    {
        "privacy_issue": "Data breach, especially as encryption is not end to end.",
        "risk_to_individuals": "PII shared with unknown parties.",
        "compliance_risk": _DPA_COMPLIANCE,
        "organisational_risk": _DPA_CORPORATE,
        "likelihood": 2, "severity": 2,
        "solution": "No sensitive personal data should be shared. Those signing up to the service should be made "
                    "aware that personal information will be needed.",
        "result": "accepted",
        "evaluation": _PROPORTIONATE,
    },
    {
        "privacy_issue": "Servers based in China.",
        "risk_to_individuals": "PII subject to possible review.",
        "compliance_risk": _DPA_COMPLIANCE,
        "organisational_risk": _DPA_CORPORATE,
        "likelihood": 2, "severity": 2,
        "solution": "No sensitive personal data should be shared. Those signing up to the service should be made "
                    "aware that personal information will be needed – people need to be informed that what they "
                    "say or do may be monitored as it is routed through China, and that information is stored in "
                    "the US.",
        "result": "accepted",
        "evaluation": _PROPORTIONATE,
    },
    {
        "privacy_issue": "Data being used for purposes other than those it was collected for.",
        "risk_to_individuals": "Users have a right to understand how we will use their PII.",
        "compliance_risk": _DPA_COMPLIANCE,
        "organisational_risk": _DPA_CORPORATE,
        "likelihood": 1, "severity": 2,
        "solution": "Limited PII is used by the school – it is the service being used. The privacy notice is "
                    "updated with suitable information and warnings.",
        "result": "accepted",
        "evaluation": _PROPORTIONATE,
    },
    {
        "privacy_issue": "Data being held outside the EU and therefore subject to other jurisdictions' legislation.",
        "risk_to_individuals": "Data protection laws may not be equivalent to the Isle of Man's, and therefore may "
                               "not have the same controls.",
        "compliance_risk": _DPA_COMPLIANCE,
        "organisational_risk": _DPA_CORPORATE,
        "likelihood": 2, "severity": 2,
        "solution": "A data transfer framework is in place. Zoom's privacy notice recognises the GDPR principles, "
                    "and privacy and security are areas Zoom is working on.",
        "result": "accepted",
        "evaluation": _PROPORTIONATE,
    },
    {
        "privacy_issue": "Zoombombing (not specifically a privacy issue).",
        "risk_to_individuals": "Subject to unpleasant materials.",
        "compliance_risk": "",
        "organisational_risk": "Complaints and upset caused. Reputational damage.",
        "likelihood": 2, "severity": 3,
        "solution": "Every meeting is password protected and uses the waiting room: nobody joins without being "
                    "admitted by the host, who checks each pupil's name. The link and password are emailed to "
                    "parents shortly before the lesson and are not shared or posted publicly. The meeting is "
                    "locked once everyone has joined; only the host shares their screen; the chat is closed by the "
                    "host. If anything inappropriate happens, the host ends the meeting at once.",
        "result": "reduced",
        "evaluation": "Justified and proportionate: the measures make an intrusion unlikely and end it at once if "
                      "it happens; the remaining risk is explained to parents before they consent.",
    },
]

# Step six.
ACTIONS: list[dict] = [
    {"action": "Advise that the most up to date software should be used – patches and updates installed.",
     "due_note": "Before the first session, then on each release", "responsibility": "Users"},
    {"action": "When personal data of a sensitive nature starts to be shared, the meeting should be terminated and "
               "continued more securely, if appropriate – NB safeguarding responsibilities, and also protecting "
               "staff.",
     "due_note": "Immediately", "responsibility": "Host (member of staff of the school)"},
    {"action": "Privacy notice to be updated to highlight the risks and issues.",
     "due_note": "Before the first session", "responsibility": "Executive headteacher"},
    {"action": "Consent to be sought before using the service.",
     "due_note": "Before the first session", "responsibility": "Executive headteacher"},
]
CONTACT_POINT = "The executive headteacher, and the Data Protection Officer."

# GDPR principles (pia.questions.PRINCIPLES keys).
PRINCIPLES: dict[str, str] = {
    "p1_purpose": "Yes – to provide ongoing contact with pupils and students.",
    "p1_tell": "Privacy notice; consent form and letter.",
    "p1_notices": "Yes – before using the service.",
    "p1_conditions": "Consent is being used – some parents may not want their children or young people using this "
                     "service.",
    "p1_consent": "By email. It is for individual establishments to establish other means of communicating with "
                  "their students if they are able, e.g. email.",
    "p1_article8": "No.",
    "p1_social_need": "Yes – to maintain contact with data subjects during this period of lockdown.",
    "p1_proportionate": "Yes; but there are recognised issues with the service, so explicit information needs to be "
                        "provided.",
    "p2_all_purposes": "Yes.",
    "p2_new_purposes": "No.",
    "p3_quality": "Yes; it is personal choice whether people sign up, but it must be made clear what the risks are.",
    "p3_not_needed": "Limited information is needed by the person controlling the meeting, although they are able "
                     "to access more information than they need due to the set-up of Zoom as it stands.",
    "p4_amend": "N/A.",
    "p4_accurate": "N/A.",
    "p5_retention": "N/A – up to individuals to delete their accounts as they see fit.",
    "p5_delete": "N/A.",
    "p6_protection": "Security is being developed as part of the ongoing development of Zoom.",
    "p6_training": "Some input may be needed to ensure meetings are password protected, and to show how links are "
                   "passed out.",
}
