"""Natural language: chat and speech pasted into machine text."""

from __future__ import annotations

import re
import urllib.parse
from typing import TYPE_CHECKING

from pipelines.rules.detectors.detector import Spans, TextDetector
from pipelines.rules.detectors.normalise import UNSPACED_SCRIPTS, outermost

if TYPE_CHECKING:
    from pipelines.rules.detectors.settings import DetectorSettings

__all__ = ["NATURAL_LANGUAGE"]

# Words people use in chat and speech but log messages rarely do.
_CONVERSATIONAL = frozenset(
    {
        *("i", "i'm", "i've", "i'll", "i'd", "me", "my", "mine", "myself"),
        *("you", "you're", "you've", "you'll", "you'd", "your", "yours", "yourself"),
        *("we", "we're", "we've", "we'll", "we'd", "us", "our", "ours", "let's", "let"),
        *("he", "she", "they", "them", "his", "her", "their", "someone", "anyone", "everyone"),
        *("everybody", "somebody", "nobody", "guys", "folks"),
        *("can", "could", "would", "should", "shall", "might", "gonna", "wanna"),
        *("please", "pls", "plz", "thanks", "thank", "thx", "sorry"),
        *("hey", "hi", "hello", "bye", "ok", "okay", "yes", "yeah", "yep", "nope", "sure", "lol"),
        *("think", "guess", "feel", "hope", "want", "need", "know", "see", "forgot"),
        *("honestly", "really", "actually", "maybe", "probably", "almost", "just", "so"),
        *("today", "tomorrow", "tonight", "yesterday", "morning", "afternoon", "evening"),
        *("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        *("week", "weekend", "lunch", "dinner"),
        *("don't", "can't", "won't", "didn't", "doesn't", "isn't", "it's", "that's"),
        # German, Spanish, French, Portuguese, Italian, Dutch: pronouns, modals, greetings,
        # thanks and days, the words chat has and log messages of any locale lack.
        *("ich", "du", "wir", "ihr", "mich", "dich", "uns", "euch", "mein", "dein", "kannst"),
        *("können", "bitte", "danke", "morgen", "heute", "nicht", "hallo", "tschüss", "sehen"),
        *("yo", "tú", "nosotros", "puedes", "puedo", "podemos", "gracias", "hola", "mañana"),
        *("hoy", "favor", "vale", "nos", "vemos", "quieres", "necesito", "estoy"),
        *("je", "tu", "nous", "vous", "merci", "bonjour", "demain", "peux", "pouvez", "salut"),
        *("eu", "você", "obrigado", "obrigada", "amanhã", "olá", "pode", "vamos"),
        *("io", "grazie", "ciao", "domani", "puoi", "possiamo"),
        *("jij", "jullie", "kun", "bedankt", "morgen", "dank"),
    }
)
# Words of client telemetry: each one counts against a sentence being someone's words.
_MACHINE = frozenset(
    {
        *("error", "errors", "failed", "failure", "fail", "timeout", "timed", "exception"),
        *("null", "invalid", "unknown", "unexpected", "unable", "denied", "permission"),
        *("retry", "retrying", "restart", "reset", "reconnect", "reconnecting", "crashed"),
        *("crash", "assertion", "fault", "abort", "aborted", "watchdog", "warning", "debug"),
        *("connection", "connect", "connected", "disconnected", "socket", "handshake", "peer"),
        *("server", "client", "host", "network", "bandwidth", "bitrate", "packet", "packets"),
        *("buffer", "frame", "frames", "stream", "codec", "decoder", "encoder", "renderer"),
        *("thread", "method", "invoke", "object", "reference", "process", "memory", "cpu"),
        *("gpu", "device", "devices", "audio", "video", "camera", "microphone", "headset"),
        *("bluetooth", "screen", "resolution", "default", "session", "token", "request"),
        *("response", "status", "code", "config", "user", "meeting", "ms", "kbps", "fps"),
        *("upload", "download", "uploaded", "downloaded", "stalled", "queued", "cache", "disk"),
    }
)
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb"
_OPENERS = _QUOTES + "(\u00a1\u00bf"
_CLOSERS = _QUOTES + ")"
_TRAILERS = _CLOSERS + ",.!?;:\u2026"
_TERMINATORS = frozenset(".!?;:)\u2026")
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*[^\W\d_]{0,3}")
_DASHES = re.compile(r"[-\u2013\u2014\u2026]+")
_TOKEN = re.compile(r"\S+")


def _find_natural_language(text: str, settings: DetectorSettings) -> Spans:
    spans = list(_find_sentences(text, settings))
    spans.extend(_find_joined(text, settings))
    if not text.isascii():
        spans.extend(_find_other_scripts(text, settings))
    yield from outermost(spans)


def _find_sentences(text: str, settings: DetectorSettings) -> Spans:
    sentence: list[tuple[re.Match[str], bool]] = []  # (token, is a word)
    for token in _TOKEN.finditer(text):
        raw = token.group()
        stripped = raw.rstrip(_TRAILERS)
        core = stripped.lstrip(_OPENERS)
        if "(" in stripped[: len(stripped) - len(core)]:
            # An aside in parentheses is a sentence of its own.
            yield from _judge_sentence(sentence, settings)
            sentence = []
        if _WORD.fullmatch(core):
            sentence.append((token, True))
        elif not core or _NUMBER.fullmatch(core) or _DASHES.fullmatch(core):
            sentence.append((token, False))
        else:
            # Code-like token (dotted name, call, key=value, path): the sentence ends here.
            yield from _judge_sentence(sentence, settings)
            sentence = []
            continue
        if _TERMINATORS.intersection(raw[len(stripped) :]):
            yield from _judge_sentence(sentence, settings)
            sentence = []
    yield from _judge_sentence(sentence, settings)


# Share of telemetry words a long sentence with a conversational word may hold and still read
# as prose (measured on the generator's chat and log corpora and the tests' lists: no new false
# positive among ~700 machine lines; without the conversational word, "recording stopped
# because the disk on the host is full" would be flagged).
_PROSE_MACHINE_SHARE = 0.2


def _judge_sentence(
    sentence: list[tuple[re.Match[str], bool]], settings: DetectorSettings
) -> Spans:
    words = [
        token.group().rstrip(_TRAILERS).lstrip(_OPENERS).lower().replace("\u2019", "'")
        for token, is_word in sentence
        if is_word
    ]
    if len(words) < settings.natural_language_min_words:
        return
    last = sentence[-1][0].group()
    if _reads_as_chat(words, "?" in last or "!" in last, settings):
        first = next(token for token, is_word in sentence if is_word)
        opening = len(first.group()) - len(first.group().lstrip(_OPENERS))
        closing = len(last) - len(last.rstrip(_CLOSERS))
        yield first.start() + opening, sentence[-1][0].end() - closing


def _reads_as_chat(
    words: list[str], asks_or_exclaims: bool, settings: DetectorSettings, prose: bool = True
) -> bool:
    """Do these lower-cased words read as someone's words rather than a machine's?"""
    function_words = sum(word in _CONVERSATIONAL for word in words)
    machine_words = sum(word in _MACHINE for word in words)
    cues = function_words + asks_or_exclaims - machine_words
    conversational = (
        cues >= settings.natural_language_min_function_words
        and function_words / len(words) >= settings.natural_language_min_function_share
    )
    # Long sentences are prose even with a telemetry word or two in them ("my camera is off
    # because the bandwidth here is terrible"): machine messages are short or dense with jargon.
    few_machine = machine_words <= _PROSE_MACHINE_SHARE * len(words)
    long_enough = prose and len(words) >= settings.natural_language_min_prose_words
    reads_as_prose = long_enough and (not machine_words or (few_machine and function_words > 0))
    return conversational or reads_as_prose


# A token whose words are joined by something other than spaces: URL-encoded
# ("text=hey%20can%20you..."), "+", "_", "|", "~", "/" or dots.
_JOINER = re.compile(r"%[0-9A-Fa-f]{2}|[+_|~/.=&:;,\-]")
_JOINED_PIECE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def _find_joined(text: str, settings: DetectorSettings) -> Spans:
    """Tokens that read as chat once their joiners are spaces (URL-decoded first)."""
    for token in _TOKEN.finditer(text):
        raw = token.group()
        if not _JOINER.search(raw):
            continue
        decoded = urllib.parse.unquote_plus(raw) if "%" in raw or "+" in raw else raw
        words = [w.lower() for w in _JOINED_PIECE.findall(decoded.replace("_", " "))]
        if len(words) < settings.natural_language_min_words:
            continue
        # Only the conversational test: a long joined token (a URL, a path) is no prose.
        asks = decoded.rstrip(_CLOSERS)[-1:] in ("?", "!")  # a URL's "?" asks nothing
        if _reads_as_chat(words, asks, settings, prose=False) or (
            not decoded.isascii() and _script_words(decoded, settings)
        ):
            yield token.span()


# Letters of scripts written with spaces that are not Latin: Greek, Cyrillic, Armenian, Hebrew,
# Arabic, the Indic scripts, Georgian, Hangul, Ethiopic (with their combining marks).
_OTHER_SPACED = (
    "\u0370-\u03ff\u0400-\u052f\u0530-\u058f\u0590-\u05ff\u0600-\u06ff\u0750-\u077f"
    "\u08a0-\u08ff\u0900-\u0dff\u10a0-\u10ff\u1100-\u11ff\u1200-\u137f\uac00-\ud7af"
)
_SCRIPT_WORD = re.compile(f"[{_OTHER_SPACED}]+")
# Words of one sentence: only spaces, digits and punctuation between them, no Latin letters.
_SCRIPT_SENTENCE = re.compile(f"[{_OTHER_SPACED}]+(?:[\\W\\d]*[{_OTHER_SPACED}]+)*")
# A run of unspaced script, its own punctuation (CJK punctuation and fullwidth forms) inside it.
_UNSPACED_RUN = re.compile(
    f"[{UNSPACED_SCRIPTS}](?:[{UNSPACED_SCRIPTS}\u3000-\u303f\uff01-\uff1f]*[{UNSPACED_SCRIPTS}])?"
)


def _script_words(text: str, settings: DetectorSettings) -> bool:
    return bool(
        any(
            len(_SCRIPT_WORD.findall(m.group())) >= settings.natural_language_min_script_words
            for m in _SCRIPT_SENTENCE.finditer(text)
        )
        or any(
            len(m.group()) >= settings.natural_language_min_unspaced_chars
            for m in _UNSPACED_RUN.finditer(text)
        )
    )


def _find_other_scripts(text: str, settings: DetectorSettings) -> Spans:
    """Sentences in scripts other than Latin: min_script_words words of a spaced script, or a
    run of min_unspaced_chars characters of Han, kana, Thai and the like. Machine text in
    those scripts is rare; a client's localised UI strings are common across accounts, which
    the allow-list (not this detector) decides."""
    for match in _SCRIPT_SENTENCE.finditer(text):
        if len(_SCRIPT_WORD.findall(match.group())) >= settings.natural_language_min_script_words:
            yield match.span()
    for match in _UNSPACED_RUN.finditer(text):
        if len(match.group()) >= settings.natural_language_min_unspaced_chars:
            yield match.span()


_CONVERSATIONAL_STEMS = sorted({word.split("'")[0] for word in _CONVERSATIONAL})
# RE2 spellings of the natural-language tokens in ASCII text: whitespace as Python's \s
# (RE2's \s lacks \v and \x1c-\x1f), a word token, and a number or dash token.
_S = r"[\t-\r\x1c-\x1f ]"
_W = r"[\"'(]*[A-Za-z]+(?:['\-][A-Za-z]+)*[\"'),.!?;:]*"
_U = r"[\"'(]*(?:[0-9]+(?:[.,:/\-][0-9]+)*[A-Za-z]{0,3}|-+)?[\"'),.!?;:]*"


def _prefilter(settings: DetectorSettings) -> str | None:
    """A conversational sentence holds a conversational word unless a closing ? or ! alone
    can qualify it; a prose sentence holds min_prose_words words with nothing but numbers or
    dashes between them (as _find_natural_language tokenises ASCII text)."""
    if (
        settings.natural_language_min_function_share <= 0
        and settings.natural_language_min_function_words <= 1
    ):
        return None
    stems = "|".join(stem for stem in _CONVERSATIONAL_STEMS if stem.isascii())
    more = settings.natural_language_min_prose_words - 1
    prose = f"(?:^|{_S}){_W}(?:{_S}+(?:{_U}{_S}+)*{_W}){{{more}}}(?:{_S}|$)"
    # Joined tokens ("hey_can_you", "hey%20can%20you") hold a stem between non-letters.
    return f"(?i:(?:^|[^a-z])(?:{stems})(?:[^a-z]|$))|{prose}"


NATURAL_LANGUAGE = TextDetector("natural_language", _find_natural_language, _prefilter)
