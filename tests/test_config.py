"""configs/ load into frozen objects; every bad value names its file and key."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from pipelines.config import load_config
from pipelines.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_load_and_are_frozen():
    config = load_config()
    assert config.policy.content_policy == "never"
    assert config.taxonomy.data_use == "train_ai_system"
    assert config.taxonomy.category_fides["content"] == "user.content.private"
    assert config.taxonomy.field_fides["ip_address"] == "user.device.ip_address"
    assert config.config_hash.startswith("sha256:")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.policy = None  # type: ignore[misc]


def test_the_config_hash_follows_the_content(tmp_path):
    override = tmp_path / "o.json"
    override.write_text(json.dumps({"policy": {"chunk_records": 999}}))
    assert load_config(override_file=override).config_hash != load_config().config_hash
    assert load_config().config_hash == load_config().config_hash


BAD = [
    ({"policy": {"chunk_records": 0}}, "policy.json", "chunk_records"),
    ({"policy": {"max_file_records": 0}}, "policy.json", "max_file_records"),
    ({"policy": {"max_decompressed_bytes": 1000}}, "policy.json", "max_decompressed_bytes"),
    (
        {"policy": {"reread_inputs_above_records": "1M"}},
        "policy.json",
        "reread_inputs_above_records",
    ),
    ({"policy": {"content_policy": "host_only"}}, "policy.json", "content_policy"),
    ({"policy": {"on_detector_finding": "ignore"}}, "policy.json", "on_detector_finding"),
    (
        {"deidentify": {"field_rules": {"ip_address": "keep"}}},
        "deidentify.json",
        "field_rules.ip_address",
    ),
    ({"deidentify": {"drop_categories": ["content"]}}, "deidentify.json", "drop_categories"),
    ({"detectors": {"enabled": ["email", "telepathy"]}}, "detectors.json", "telepathy"),
    ({"detectors": {"blob": {"min_hex": -1}}}, "detectors.json", "blob.min_hex"),
    (
        {"taxonomy": {"record_class_overrides": {"qos.nope": "service_generated"}}},
        "taxonomy.json",
        "record_class_overrides",
    ),
    (
        {"taxonomy": {"record_class_overrides": {"qos.audio": "trainable"}}},
        "taxonomy.json",
        "record_class_overrides.qos.audio",
    ),
    ({"routing": {}}, "o.json", "routing"),
]


@pytest.mark.parametrize(("override", "file", "key"), BAD, ids=[b[2] for b in BAD])
def test_a_bad_value_names_file_and_key(tmp_path, override, file, key):
    path = tmp_path / "o.json"
    path.write_text(json.dumps(override))
    with pytest.raises(ConfigError) as err:
        load_config(override_file=path)
    assert file in str(err.value) and key in str(err.value)


def test_a_broken_config_file_is_named(tmp_path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    (tmp_path / "configs" / "policy.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"policy\.json: not valid JSON"):
        load_config(tmp_path)


def test_a_missing_config_file_is_named(tmp_path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    (tmp_path / "configs" / "taxonomy.json").unlink()
    with pytest.raises(ConfigError, match=r"taxonomy\.json: config file is missing"):
        load_config(tmp_path)


# A misspelt key in any section (or sub-object) is refused with file, section, key and the
# nearest valid key; without the check the run would use the default and publish.
UNKNOWN_KEYS = [
    (
        {"policy": {"on_detector_findings": "redact"}},
        "policy",
        "on_detector_findings",
        "on_detector_finding",
    ),
    ({"schedule": {"lock_stale_after": 60}}, "schedule", "lock_stale_after", "lock_stale_after_s"),
    (
        {"deidentify": {"pseudonym_prefx": "ps_"}},
        "deidentify",
        "pseudonym_prefx",
        "pseudonym_prefix",
    ),
    ({"taxonomy": {"data_uses": "x"}}, "taxonomy", "data_uses", "data_use"),
    (
        {"taxonomy": {"record_classes": {"unknown": {"fides": "user", "may_trian": "never"}}}},
        "taxonomy",
        "may_trian",
        "may_train",
    ),
    ({"taxonomy": {"categories": {"servce": {"fides": "user"}}}}, "taxonomy", "servce", "service"),
    ({"detectors": {"blob": {"min_hexx": 40}}}, "detectors", "min_hexx", "min_hex"),
    ({"detectors": {"enable": ["email"]}}, "detectors", "enable", "enabled"),
    (
        {"deidentify": {"field_rules": {"ip_adress": "drop"}}},
        "deidentify",
        "ip_adress",
        "ip_address",
    ),
    ({"taxonomy": {"field_fides": {"emial": "user.contact.email"}}}, "taxonomy", "emial", "email"),
    ({"polcy": {"chunk_records": 10}}, "polcy", "polcy", "policy"),
]


@pytest.mark.parametrize(
    ("override", "section", "key", "nearest"), UNKNOWN_KEYS, ids=[u[2] for u in UNKNOWN_KEYS]
)
def test_an_unknown_key_names_file_section_key_and_the_nearest(
    tmp_path, override, section, key, nearest
):
    path = tmp_path / "o.json"
    path.write_text(json.dumps(override))
    with pytest.raises(ConfigError) as err:
        load_config(override_file=path)
    message = str(err.value)
    assert str(path) in message and section in message and repr(key) in message, message
    assert message.endswith(f"did you mean {nearest}?"), message


@pytest.mark.parametrize(
    "override",
    [
        {"policy": {"on_detector_finding": "redact", "chunk_records": 500}},
        {"taxonomy": {"record_classes": {"unknown": {"may_train": "never"}}}},
        {"deidentify": {"field_rules": {"ip_address": "drop", "email": "pseudonymise"}}},
        {"detectors": {"blob": {"min_hex": 40}}},
    ],
    ids=["policy", "record-class-entry", "field-rules", "detector-threshold"],
)
def test_known_keys_still_load(tmp_path, override):
    path = tmp_path / "o.json"
    path.write_text(json.dumps(override))
    load_config(override_file=path)


def test_a_config_pickles_whole_and_workers_share_its_schemas():
    # Beam pickles the config into every DoFn; what arrives must be the same config, schema
    # key order (the field order of every table) included, and a worker's stages share one
    # schemas mapping so what is compiled from it is compiled once.
    from apache_beam.internal import pickler

    config = load_config()
    first, second = (pickler.loads(pickler.dumps(config)) for _ in range(2))

    assert first == config
    assert json.dumps(first.schemas) == json.dumps(config.schemas)
    assert first.schemas is second.schemas
    assert first.contract() is second.contract()
    assert len(pickler.dumps(config)) < len(json.dumps(config.schemas)) / 5
