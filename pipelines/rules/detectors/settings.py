"""Which detectors run and their thresholds: configs/detectors.json as a frozen object."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import phonenumbers

from pipelines.rules.detectors.contact import PHONE_REGIONS
from pipelines.rules.detectors.registry import DETECTORS

__all__ = ["DetectorSettings"]

# (section, key, lowest, highest) of every integer setting; field name is section_key.
# RE2 refuses counted repetitions above 1000, hence the blob ceilings.
_INTEGER_KEYS: tuple[tuple[str, str, int, int], ...] = (
    ("blob", "min_base64", 8, 1000),
    ("blob", "min_hex", 8, 1000),
    ("natural_language", "min_words", 1, 1000),
    ("natural_language", "min_function_words", 1, 1000),
    ("natural_language", "min_prose_words", 1, 1000),
    ("natural_language", "min_script_words", 1, 1000),
    ("natural_language", "min_unspaced_chars", 1, 1000),
    ("known_identifier", "min_length", 1, 1000),
    ("known_identifier", "max_words", 1, 20),
    # Three words is the shortest content record the echo index keeps.
    ("content_echo", "shingle_words", 3, 100),
    # Below four words (or characters) a run is a stock phrase; two meetings at least, or
    # every run would be common.
    ("other_subject_echo", "shingle_words", 4, 100),
    ("other_subject_echo", "shingle_chars", 4, 100),
    ("other_subject_echo", "common_meetings", 2, 1_000_000),
)
_SHARE_KEYS: tuple[tuple[str, str], ...] = (("natural_language", "min_function_share"),)
_REGION_KEYS: tuple[tuple[str, str], ...] = (("phone", "regions"),)
_SETTING_KEYS = (
    [(section, key) for section, key, _, _ in _INTEGER_KEYS]
    + list(_SHARE_KEYS)
    + list(_REGION_KEYS)
)
_SECTIONS: dict[str, set[str]] = {
    section: {key for other, key in _SETTING_KEYS if other == section}
    for section, _ in _SETTING_KEYS
}


@dataclass(frozen=True)
class DetectorSettings:
    """Which detectors run and their thresholds (configs/detectors.json)."""

    enabled: tuple[str, ...] = DETECTORS
    # Regions whose national formats a phone number written without a country code is
    # checked against (libphonenumber region codes); "+" or "00" numbers need none.
    phone_regions: tuple[str, ...] = PHONE_REGIONS
    # Shorter base64 runs are common in ordinary ids; 40 chars is 240 bits of payload.
    blob_min_base64: int = 40
    # 32 hex chars = 128 bits: a key, digest or token, not a counter or address.
    blob_min_hex: int = 32
    # Machine log messages are short and impersonal; chat has pronouns and modals. A
    # sentence of >= min_words words is flagged when its conversational words (plus one
    # for a closing ? or !, minus its machine words) reach min_function_words and make up
    # >= min_function_share of it, or when it runs to min_prose_words with no machine word.
    natural_language_min_words: int = 3
    natural_language_min_function_words: int = 2
    natural_language_min_function_share: float = 0.15
    natural_language_min_prose_words: int = 8
    # In scripts other than Latin, two words of one sentence ("Привет, сможешь?") or four
    # characters of Han, kana or Thai ("你明天来吗") are a person's words: machine text in
    # them is rare, and common UI strings are the allow-list's to keep.
    natural_language_min_script_words: int = 2
    natural_language_min_unspaced_chars: int = 4
    # Shorter values ("Al", "Bob", "1") hit ordinary words and numbers.
    known_identifier_min_length: int = 4
    known_identifier_max_words: int = 3
    # Three words of a meeting's content quoted in its service text are a quote (the issue's
    # hostile runs); the window only matches text made of that meeting's own content words.
    content_echo_shingle_words: int = 3
    # A consented record is restricted when it shares a run with content of a subject who did
    # not consent for it (detectors/echo.py). Six words is a clause of a sentence: quoted, it is
    # someone's words; five or fewer are often set phrases. Eight characters of Chinese,
    # Japanese or Thai carry about as much as six English words.
    other_subject_echo_shingle_words: int = 6
    other_subject_echo_shingle_chars: int = 8
    # A run that content of five or more meetings of the run holds is common speech ("before
    # the board call", "can everyone see my screen"), not a quotation of one person: a quote
    # lives in its meeting and maybe a follow-up or two.
    other_subject_echo_common_meetings: int = 5

    @classmethod
    def default(cls) -> DetectorSettings:
        """The shipped defaults; configs/detectors.json holds the same values."""
        return cls()

    @classmethod
    def from_file(cls, path: str | Path) -> DetectorSettings:
        """Read and check a detectors JSON file."""
        source = str(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"{source}: cannot read detector settings: {error}") from error
        return cls.from_mapping(data, source)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> DetectorSettings:
        """Check `data` key by key; errors name `source` and the offending key."""
        return cls(**_checked_values(data, source))

    def __post_init__(self) -> None:
        _checked_values(self.to_mapping(), type(self).__name__)

    def to_mapping(self) -> dict[str, Any]:
        """The JSON shape of these settings (inverse of `from_mapping`)."""
        data: dict[str, Any] = {"enabled": list(self.enabled)}
        for item in fields(self):
            if item.name != "enabled":
                section, key = _split_field(item.name)
                value = getattr(self, item.name)
                data.setdefault(section, {})[key] = (
                    list(value) if isinstance(value, tuple) else value
                )
        return data


def _split_field(name: str) -> tuple[str, str]:
    for section in _SECTIONS:
        if name.startswith(section + "_"):
            return section, name[len(section) + 1 :]
    raise AssertionError(f"settings field {name} belongs to no section")


def _checked_values(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The DetectorSettings fields held in `data`; ValueError names `source` and the key."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"enabled", *_SECTIONS})
    if unknown:
        raise ValueError(f"{source}: unknown key {unknown[0]!r}")
    values: dict[str, Any] = {"enabled": _read_enabled(data, source)}
    for section, keys in _SECTIONS.items():
        block = data.get(section)
        if not isinstance(block, Mapping):
            raise ValueError(f"{source}: {section} must be an object with keys {sorted(keys)}")
        extra = sorted(set(block) - keys)
        if extra:
            raise ValueError(f"{source}: unknown key {section}.{extra[0]}")
    for section, key, lowest, highest in _INTEGER_KEYS:
        value = data[section].get(key)
        name = f"{section}.{key}"
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ValueError(f"{source}: {name} must be an integer >= {lowest}, got {value!r}")
        if value > highest:
            raise ValueError(f"{source}: {name} must be an integer <= {highest}, got {value!r}")
        values[f"{section}_{key}"] = value
    for section, key in _SHARE_KEYS:
        value = data[section].get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(
                f"{source}: {section}.{key} must be a number between 0 and 1, got {value!r}"
            )
        values[f"{section}_{key}"] = float(value)
    for section, key in _REGION_KEYS:
        values[f"{section}_{key}"] = _read_regions(
            data[section].get(key), f"{section}.{key}", source
        )
    return values


def _read_regions(value: Any, name: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(code, str) for code in value):
        raise ValueError(f"{source}: {name} must be a list of region codes, got {value!r}")
    for code in value:
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{source}: {name} names unknown region {code!r} (e.g. US, GB, DE)")
    if len(set(value)) != len(value):
        raise ValueError(f"{source}: {name} lists a region twice: {list(value)!r}")
    return tuple(value)


def _read_enabled(data: Mapping[str, Any], source: str) -> tuple[str, ...]:
    enabled = data.get("enabled")
    if not isinstance(enabled, list) or not all(isinstance(name, str) for name in enabled):
        raise ValueError(f"{source}: enabled must be a list of detector names, got {enabled!r}")
    for name in enabled:
        if name not in DETECTORS:
            raise ValueError(
                f"{source}: enabled names unknown detector {name!r} (known: {', '.join(DETECTORS)})"
            )
    if len(set(enabled)) != len(enabled):
        raise ValueError(f"{source}: enabled lists a detector twice: {enabled!r}")
    return tuple(enabled)
