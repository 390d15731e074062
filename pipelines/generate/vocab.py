"""Words, names, places and machine phrases the generated meetings are made of.

Shared by every source: a person is named, placed and equipped from these lists whichever
platform's shape their records take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# -- vocabularies -------------------------------------------------------------------------
FIRST_NAMES = (
    "Alice", "Amara", "Ana", "Arjun", "Aylin", "Ben", "Bruno", "Camille", "Carlos", "Chloé",
    "Daniel", "Dmitri", "Elena", "Emeka", "Emma", "Fatima", "Felix", "Grace", "Hana", "Hugo",
    "Ibrahim", "Ingrid", "Isabel", "Jakub", "James", "Jonas", "José", "Julia", "Kai", "Kenji",
    "Lars", "Laura", "Lena", "Liam", "Lucía", "Mai", "Marco", "Maria", "Mateo", "Mei",
    "Mohammed", "Nadia", "Noah", "Nora", "Olivia", "Omar", "Paul", "Priya", "Rafael", "René",
    "Rosa", "Sami", "Sara", "Sofia", "Tariq", "Thomas", "Valentina", "Wei", "Yara", "Zoë",
)  # fmt: skip
LAST_NAMES = (
    "Adeyemi", "Andersen", "Bauer", "Becker", "Bianchi", "Chen", "Costa", "Dias", "Dubois",
    "Eriksson", "Fernández", "Fischer", "Garcia", "Gupta", "Haddad", "Hansen", "Hughes",
    "Ivanova", "Jensen", "Kaya", "Kim", "Kowalski", "Lambert", "Lefèvre", "Lindqvist",
    "Martin", "Mensah", "Moreau", "Müller", "Murphy", "Nakamura", "Nguyen", "Novak", "O'Brien",
    "Okafor", "Olsen", "Patel", "Petrov", "Rossi", "Santos", "Schmidt", "Silva", "Singh",
    "Suzuki", "Tanaka", "Wagner", "Walker", "Weber", "Yilmaz", "Zhang",
)  # fmt: skip
COMPANY_DOMAINS = (
    "northwind.example.com", "bluefin-labs.example.com", "contoso.example.com",
    "orbital-freight.example.com", "kestrel-health.example.org", "tallow.example.net",
    "brightline.example.com", "meridian-legal.example.com", "quarry.example.org",
    "helio-energy.example.com", "larkspur.example.net", "copperleaf.example.com",
)  # fmt: skip
PERSONAL_EMAIL_DOMAIN = "mail.example.org"
# Leaked addresses use a domain no participant has, so they trip only the email detector.
LEAK_EMAIL_DOMAIN = "inbox.example.net"
CITIES = (
    ("Lyon", "FR"), ("Paris", "FR"), ("Berlin", "DE"), ("Munich", "DE"), ("Madrid", "ES"),
    ("Barcelona", "ES"), ("Milan", "IT"), ("Rome", "IT"), ("Amsterdam", "NL"),
    ("Stockholm", "SE"), ("Oslo", "NO"), ("Warsaw", "PL"), ("Dublin", "IE"), ("London", "GB"),
    ("Manchester", "GB"), ("New York", "US"), ("San Francisco", "US"), ("Austin", "US"),
    ("Chicago", "US"), ("Toronto", "CA"), ("Vancouver", "CA"), ("Mexico City", "MX"),
    ("São Paulo", "BR"), ("Buenos Aires", "AR"), ("Lagos", "NG"), ("Nairobi", "KE"),
    ("Cairo", "EG"), ("Dubai", "AE"), ("Mumbai", "IN"), ("Bangalore", "IN"),
    ("Singapore", "SG"), ("Tokyo", "JP"), ("Osaka", "JP"), ("Seoul", "KR"), ("Sydney", "AU"),
    ("Auckland", "NZ"), ("Istanbul", "TR"), ("Zurich", "CH"), ("Vienna", "AT"),
    ("Lisbon", "PT"),
)  # fmt: skip
# (device, os versions, weight)
DEVICES = (
    ("Mac", ("14.6", "15.1", "15.2"), 30),
    ("Windows", ("10", "11"), 34),
    ("iPhone", ("17.6", "18.1"), 10),
    ("Android", ("13", "14", "15"), 8),
    ("iPad", ("17.6", "18.1"), 4),
    ("Linux", ("6.8", "6.11"), 5),
    ("Web", ("Chrome 131", "Firefox 133", "Safari 18.1"), 6),
    ("Room System", ("5.2", "5.3"), 3),
)
CLIENT_VERSIONS = ("6.3.1", "6.3.0", "6.2.6", "6.2.5", "6.1.12", "5.17.11")
NETWORK_TYPES = ("wifi", "wifi", "wifi", "wired", "wired", "cellular", "unknown")
DATA_CENTERS = ("EU-Central", "EU-West", "US-East", "US-West", "AP-Southeast", "SA-East")
CONNECTION_TYPES = ("UDP", "UDP", "UDP", "UDP", "TCP", "TLS")
VIDEO_MODES = (("1280x720", 30), ("640x360", 30), ("1920x1080", 30), ("960x540", 24))
SHARE_MODES = (("1920x1080", 15), ("2560x1440", 10), ("1280x720", 15), ("3840x2160", 5))
VIDEO_CODECS = ("vp8", "vp8", "vp9", "h264", "av1")
MEETING_TYPES = ("scheduled", "scheduled", "recurring", "recurring", "instant", "webinar")
FEATURES = (
    "screen_share", "whiteboard", "recording", "reactions", "breakout_rooms", "polls",
    "virtual_background", "chat", "captions", "raise_hand", "noise_suppression", "ai_companion",
)  # fmt: skip
LEAVE_REASONS = (
    "left the meeting", "left the meeting", "left the meeting", "network lost",
    "removed by host", "idle timeout", "client closed", "switched device",
)  # fmt: skip
LOG_COMPONENTS = ("net", "media", "audio", "video", "signaling", "ui", "rtc", "recording")
LOG_LEVELS = ("debug", "info", "info", "info", "warn", "warn", "error")
CRASH_COMPONENTS = ("video", "audio", "render", "net", "ui", "screen_share")
CRASH_MESSAGES = (
    "decoder crashed", "null pointer in renderer", "out of memory", "segmentation fault",
    "assertion failed: frame_count > 0", "watchdog timeout on media thread",
    "unhandled exception in signaling thread", "gpu context lost",
)  # fmt: skip
STACK_FRAMES = (
    ("Decoder.feed", "decoder.cc"), ("Decoder.flush", "decoder.cc"),
    ("Session.onFrame", "session.cc"), ("Renderer.draw", "renderer.cc"),
    ("TileView.layout", "tile_view.cc"), ("JitterBuffer.pop", "jitter_buffer.cc"),
    ("AudioDevice.open", "audio_device.cc"), ("IceAgent.restart", "ice_agent.cc"),
    ("Signaling.dispatch", "signaling.cc"), ("GpuContext.present", "gpu_context.cc"),
    ("Encoder.encode", "encoder.cc"), ("ThreadPool.run", "thread_pool.cc"),
)  # fmt: skip
TOPICS = (
    "Quarterly roadmap sync", "Weekly team standup", "Design review: onboarding flow",
    "Sales pipeline review", "Customer escalation follow-up", "Hiring committee",
    "Sprint planning", "Team retro", "All hands", "1:1", "Budget planning FY27",
    "Incident postmortem", "Product launch prep", "Board prep", "Vendor negotiation",
    "Security review", "Marketing campaign kickoff", "Interview: backend engineer",
    "Partner onboarding", "Office hours",
)  # fmt: skip
CHAT_MESSAGES = (
    "Slides are in the shared folder if anyone needs them",
    "Can everyone see my screen now or is it still frozen",
    "I'll be two minutes late, start without me",
    "Sorry my connection dropped, what did I miss just now",
    "Could you paste the link to the dashboard in here",
    "Let's push the budget discussion to next week's meeting",
    "Thanks everyone, I'll send the notes after lunch today",
    "The staging deploy finished about ten minutes ago without errors",
    "Who owns the follow-up with the vendor on pricing",
    "Please mute if you're not speaking, there's an echo",
    "I think we should ship the smaller version first",
    "Can we get a quick update on the hiring plan",
    "My camera is off because the bandwidth here is terrible",
    "Great point, let's add that to the risk register",
    "The customer asked for the contract draft by Thursday",
    "Does anyone have the numbers from last quarter handy",
    "I'll take the action item on the migration checklist",
    "Lunch just arrived so I'm stepping away for five minutes",
    "We need sign-off from legal before we publish this",
    "Reminder that the offsite agenda is due on Friday morning",
    "I can hear you fine but your video is frozen",
    "Let's keep the demo under ten minutes this time please",
    "The new onboarding flow cut support tickets almost in half",
    "Is the recording going to be shared with the whole team",
    "I'll follow up with finance about the invoice delay",
    "We're blocked on the API keys from the partner team",
    "Can someone from design join the review tomorrow afternoon",
    "Quick reminder to fill in the retro board before Friday",
    "That test failed again on the nightly build last night",
    "sounds good",
    "thanks!",
    "+1",
    "agreed",
    "brb",
)
SPOKEN_SENTENCES = (
    "Let's start with the roadmap and then move to hiring",
    "So the main thing this week is the release date",
    "I think we can hit the deadline if we cut scope a little",
    "Can you walk us through the numbers on the second slide",
    "We saw a big jump in sign-ups after the campaign went live",
    "The biggest risk right now is the dependency on the vendor",
    "Let me share my screen so everyone can see the chart",
    "We should talk to the customer before we commit to that",
    "Okay let's take five minutes and come back to this",
    "I'm not sure the team has capacity for another project",
    "The pilot went well and the feedback was mostly positive",
    "We need to decide today whether we move the launch",
    "Does anyone have questions before we move on to the next item",
    "I'll summarise the decisions at the end of the call",
    "The support queue is down to about forty tickets",
    "Our main competitor cut prices last month so we should respond",
    "Let's make sure the documentation is ready before the launch",
    "I spoke with the board and they are supportive of the plan",
    "The contract renewal is coming up at the end of the quarter",
    "We have three open positions and two offers are out",
    "Thanks everyone for joining, let's get started",
    "Can you hear me okay, I switched to my headset",
    "I'd like to hear from the engineering side first",
    "We moved the data migration to the weekend to reduce risk",
    "The survey results show that people want more flexible hours",
    "Yes",
    "Right, exactly",
)
# Chat-like sentences never used as content: planted as natural_language, so no same-meeting
# content repeats them and the leak trips only that detector.
LEAKED_SENTENCES = (
    "Can you send me the updated deck before Friday?",
    "I think my manager is going to reject this proposal",
    "Honestly the new office chairs are really uncomfortable",
    "Please call me back when you get out of the meeting",
    "We should grab dinner after the conference next week",
    "My daughter is sick so I need to leave early today",
    "Let me know if the client agrees to the revised price",
    "I forgot to book the meeting room for tomorrow morning",
    "Does anyone know when the performance reviews are due?",
    "The deal with the hospital group is almost signed",
)
WHITEBOARD_TEXTS = (
    "Ship v2 in March", "Ask legal about data retention", "Top risks", "Q3 goals",
    "Pricing options A/B", "Hiring plan", "Owner: ops team", "Customer feedback themes",
    "Blocked on vendor", "Launch checklist", "Parking lot", "Open questions",
)  # fmt: skip
WHITEBOARD_KINDS = ("sticky", "text", "shape_label")
POLLS = (
    ("Which date works for the offsite?", ("Tuesday", "Wednesday", "Thursday")),
    ("How confident are you in the Q3 plan?", ("Very", "Somewhat", "Not at all")),
    ("Preferred lunch option?", ("Pizza", "Salad", "Sushi")),
    ("Should we move the launch?", ("Yes", "No", "Need more data")),
    ("Rate today's session", ("1", "2", "3", "4", "5")),
)
SHARED_FILES = (
    ("roadmap-q3.pdf", "application/pdf"),
    ("budget-2027.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    (
        "meeting-notes.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("architecture.png", "image/png"),
    ("contract-draft-v3.pdf", "application/pdf"),
    ("customer-list.csv", "text/csv"),
    ("demo.mp4", "video/mp4"),
    ("offsite-agenda.pdf", "application/pdf"),
)
CHAT_FILE_NAMES = ("notes.docx", "screenshot.png", "agenda.pdf", "metrics.csv")
SUMMARIES = (
    "The team agreed on the Q3 roadmap and will revisit hiring next week.",
    "The group reviewed the incident timeline and agreed on three follow-ups.",
    "Launch stays on track; documentation and support training are the open items.",
    "Budget was approved with a smaller marketing line than proposed.",
    "The customer escalation is resolved; a root-cause write-up is due Friday.",
    "Design feedback was positive; the onboarding changes ship next sprint.",
)
NEXT_STEPS = (
    "{} shares the deck",
    "{} follows up with legal",
    "{} books the offsite venue",
    "{} updates the migration checklist",
    "{} sends the notes",
    "{} confirms the launch date with the customer",
)
RECORDING_TYPES = ("MP4", "M4A", "TRANSCRIPT", "CHAT", "CC", "TIMELINE")
OTHER_PURPOSES = ("product_analytics", "support_diagnostics", "marketing_research")

Rand = Callable[[], float]

# Service free text that is clean: machine phrases and numbers, nothing personal, no prose.
LOG_LINES: tuple[Callable[[Rand], str], ...] = (
    lambda r: f"ICE restart after {80 + int(r() * 900)} ms",
    lambda r: "dtls handshake timeout after 10000 ms",
    lambda r: "jitter buffer underrun",
    lambda r: "audio device changed",
    lambda r: f"reconnect attempt {1 + int(r() * 5)} of 5",
    lambda r: f"video encoder switched to {VIDEO_CODECS[int(r() * 5)]}",
    lambda r: f"bandwidth estimate {150 + int(r() * 2500)} kbps",
    lambda r: f"packet loss {int(r() * 50) / 10}% over 10 s window",
    lambda r: f"renegotiation complete in {40 + int(r() * 400)} ms",
    lambda r: "turn allocation refreshed",
    lambda r: "keyframe requested",
    lambda r: "echo canceller reset",
    lambda r: f"frame decode slow: {30 + int(r() * 200)} ms",
    lambda r: "websocket closed code 1006",
    lambda r: f"sfu migrated to {DATA_CENTERS[int(r() * 6)]}",
    lambda r: "cpu overuse detected, lowering resolution",
    lambda r: f"stats report interval {5000 * (1 + int(r() * 3))} ms",
    lambda r: "audio route changed to bluetooth",
)


def pick(r: Rand, options: tuple[Any, ...] | list[Any]) -> Any:
    return options[int(r() * len(options))]
