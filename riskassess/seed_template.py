"""The seed's "Risk assessment form – using Zoom to deliver video-conferencing in real time with groups of
pupils" (Dhoon/Laxey Federation, May 2020): the six hazard rows and their controls, as the template that
"New from template" starts a school's video-lessons assessment from. Scores are the seed's (2 × 2 = 4,
medium); the residual scores are left for the school to judge.
"""

TITLE = "Live video lessons with groups of pupils"

HAZARDS: list[dict] = [
    {
        "activity_element": "Video conference session between pupils and a member of staff",
        "hazard": "Pupils sharing inappropriate content",
        "who_affected": "Pupils",
        "likelihood": 2,
        "severity": 2,
        "controls": (
            "Parents' permission requested and received. Parents can monitor the session and are encouraged to "
            "sit in on it. All meetings scheduled by staff use the waiting room, so nobody enters without being "
            "admitted by the host. Unique meeting ID. Once everyone has joined, or 5 minutes after the start, the "
            "meeting is locked so that nobody else can join. Each meeting is password protected; the password is "
            "emailed a short time before the meeting. The child's first name is checked before they join. All "
            "microphones are muted on entry; pupils unmute only when asked, or the host does it for them. Each "
            "meeting is scheduled for a set time and usually lasts no more than 30 minutes."
        ),
        "further_action": (
            "If anything inappropriate happens, the meeting is stopped immediately. Chat closed by the host. No "
            "screen sharing by pupils. Check at the start that an adult is present in the room."
        ),
    },
    {
        "activity_element": "Video conference sessions other than with a member of staff",
        "hazard": "Pupils accepting conference invitations at other times from people purporting to be staff",
        "who_affected": "Pupils",
        "likelihood": 2,
        "severity": 2,
        "controls": (
            "Routine and protocol established and shared with parents and children. Meetings are announced in "
            "advance with set dates and times. Passwords are set and shared a short time before each session. "
            "Parents and children are told not to accept invitations at other times from people purporting to "
            "be staff of the school."
        ),
        "further_action": "",
    },
    {
        "activity_element": "Video conference session with pupils whose parents have not given permission",
        "hazard": "A leaked link reaches children whose parents have not given permission",
        "who_affected": "Pupils",
        "likelihood": 2,
        "severity": 2,
        "controls": (
            "The date, time and link are sent only by secure email to parents who have given permission, as "
            "recorded in the school's registry. Staff set up the meeting with the school's account, linked to the "
            "school's professional email address."
        ),
        "further_action": "",
    },
    {
        "activity_element": "Video conference session between staff only",
        "hazard": "Confidential discussion about pupils or staff issues overheard",
        "who_affected": "Pupils and staff",
        "likelihood": 2,
        "severity": 2,
        "controls": "Staff join the conference from a private space, out of earshot of anyone else.",
        "further_action": "",
    },
    {
        "activity_element": "Video conference session between staff only",
        "hazard": "A leaked link reaches others",
        "who_affected": "Staff",
        "likelihood": 2,
        "severity": 2,
        "controls": (
            "All meetings scheduled by the headteacher or staff use the waiting room, so nobody enters without "
            "being admitted by the host. Unique meeting ID. Password issued to staff only and sent in advance. "
            "All microphones muted on entry."
        ),
        "further_action": "",
    },
    {
        "activity_element": "Video conference session between staff only",
        "hazard": "Staff accepting conference invitations at other times from people purporting to be staff",
        "who_affected": "Staff",
        "likelihood": 2,
        "severity": 2,
        "controls": (
            "Routine and protocol established and shared with staff. Meetings are announced in advance with set "
            "dates and times. Passwords set and shared before the session."
        ),
        "further_action": "If anything inappropriate happens, the meeting is stopped immediately.",
    },
]
