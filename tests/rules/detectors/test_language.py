"""Long chat sentences that carry a telemetry word or two still read as prose."""

from __future__ import annotations

import pytest

from pipelines.rules.detectors import find_all


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("My camera is off because the bandwidth here is terrible", True),
        ("Let's push the budget discussion to next week's meeting", True),
        ("recording stopped because the disk on the host is full", False),
        ("audio device changed from default to headset", False),
        ("failed to open camera device, falling back to default", False),
    ],
    ids=["camera chat", "lets push", "disk full", "device changed", "camera fallback"],
)
def test_long_sentences_with_a_few_telemetry_words(text, flagged):
    assert any(f.detector == "natural_language" for f in find_all(text)) is flagged


# --------------------------------------------------------------------------- any script

CHAT_IN_ANY_SCRIPT = [
    ("russian", "Привет, ты сможешь прислать отчёт завтра?"),
    ("russian_short", "Спасибо, увидимся"),
    ("arabic", "مرحبا هل يمكنك إرسال الملف"),
    ("japanese", "明日の会議に来られますか"),
    ("chinese", "你明天能来开会吗"),
    ("chinese_short", "我们走吧"),
    ("korean", "내일 회의에 올 수 있어요?"),
    ("hebrew", "אתה יכול לשלוח את הקובץ"),
    ("greek", "Μπορείς να στείλεις το αρχείο;"),  # noqa: RUF001
    ("hindi", "क्या आप कल आ सकते हैं"),
    ("german", "Kannst du mir bitte die Folien schicken"),
    ("spanish", "Hola, puedes enviarme el archivo mañana"),
    ("french", "Bonjour, tu peux m'envoyer le fichier demain"),
    ("short_english", "see you at 5"),
    ("url_encoded", "text=hey%20can%20you%20send%20me%20the%20deck"),
    ("url_encoded_plus", "q=hey+can+you+send+me+the+deck"),
    (
        "url_encoded_cyrillic",
        "text=%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82%20%D0%BA%D0%B0%D0%BA%20%D0%B4%D0%B5%D0%BB%D0%B0",
    ),
    ("underscores", "note=hey_can_you_send_me_the_deck"),
    ("pipes", "hey|can|you|send|me|the|deck"),
    ("wrapped_in_telemetry", "ws frame error: hey can you send me the deck before friday retry=3"),
    ("chinese_in_log", "upload failed: 我明天把文件发给你 code=E1042"),
]


@pytest.mark.parametrize(
    "line", [c[1] for c in CHAT_IN_ANY_SCRIPT], ids=[c[0] for c in CHAT_IN_ANY_SCRIPT]
)
def test_chat_in_any_script_or_encoding_is_found(line: str) -> None:
    assert "natural_language" in {f.detector for f in find_all(line)}


CLEAN_TELEMETRY = [
    ("log", "ICE restart after 3 failures"),
    ("log_ms", "dtls handshake timeout after 10000 ms"),
    ("stack", "at com.zoom.media.Decoder.feed(Decoder.java:214)"),
    ("exception", 'Exception in thread "main" java.lang.IllegalStateException: socket closed'),
    ("path", "/usr/lib/zoom/libvideo_decoder_impl.so"),
    ("snake_case", "video_decoder_reset_after_frame_drop"),
    ("dotted", "com.zoom.media.VideoRendererFactory.createDecoderInstance"),
    ("url", "GET https://api.example.com/v2/meetings/123/recordings?page_size=30"),
    ("query", "q=status+of+media+server&limit=10"),
    ("one_cjk_word", "language=中文"),
    ("one_cyrillic_word", "locale=русский"),
]


@pytest.mark.parametrize(
    "line", [c[1] for c in CLEAN_TELEMETRY], ids=[c[0] for c in CLEAN_TELEMETRY]
)
def test_clean_telemetry_is_not_natural_language(line: str) -> None:
    assert "natural_language" not in {f.detector for f in find_all(line)}
