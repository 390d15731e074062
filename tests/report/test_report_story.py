"""One story per number: the rendered report and the run's summary line, read as text.

Real runs under both content policies; the report's HTML is reduced to the text a reader sees,
the figures in it are parsed and added up, and wording that admits content under `never` is
looked for. A rerun with another key and no ledger must say so (stderr, manifest, report).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from html import unescape
from typing import Any

import pytest

from pipelines.cli import main
from pipelines.generate import generate
from pipelines.rules.deidentify import key_fingerprint
from pipelines.run import summary_line

pytestmark = pytest.mark.e2e

KEY = "story-test-key-" + "s" * 32
OTHER_KEY = "story-test-other-key-" + "o" * 32
DESTINATIONS = ("training", "consented_content", "restricted", "quarantine", "duplicates")


def _text(html: str) -> str:
    """What a reader sees: no tags, no style, no chart (its text alternative is a table)."""
    html = re.sub(r"<(style|svg)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", text)


def _run(argv: list[str], key: str) -> int:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONSENTGATE_PSEUDONYM_KEY", key)
        return main(argv)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("story")
    truth = generate(root / "in", events=600, seed=11)
    common = ["-q", "run", "--input", str(root / "in" / "events.jsonl.gz")]
    ledger = ["--consent", str(root / "in" / "consent.jsonl"), "--as-of", truth["consent"]["as_of"]]
    found: dict[str, Any] = {"root": root}
    for policy in ("never", "per_participant"):
        out = root / policy
        assert _run([*common, *ledger, "--content-policy", policy, "--out", str(out)], KEY) == 0
        found[policy] = {
            "out": out,
            "manifest": json.loads((out / "manifest.json").read_text("utf-8")),
            "text": _text((out / "report.html").read_text("utf-8")),
        }
    return found


@pytest.fixture(scope="module")
def rerun(runs: dict[str, Any]) -> dict[str, Any]:
    """The `never` folder again: another key, per_participant and no ledger (not quiet)."""
    out = runs["root"] / "rerun"
    shutil.copytree(runs["never"]["out"], out, symlinks=True)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("pipelines").addHandler(handler)
    try:
        argv = ["run", "--input", str(runs["root"] / "in" / "events.jsonl.gz")]
        code = _run([*argv, "--content-policy", "per_participant", "--out", str(out)], OTHER_KEY)
    finally:
        logging.getLogger("pipelines").removeHandler(handler)
    assert code == 0
    return {
        "manifest": json.loads((out / "manifest.json").read_text("utf-8")),
        "text": _text((out / "report.html").read_text("utf-8")),
        "warnings": [r.getMessage() for r in records if r.levelno == logging.WARNING],
    }


@pytest.mark.parametrize("policy", ["never", "per_participant"])
def test_the_flow_sentence_adds_up_to_the_input(runs, policy):
    text, counts = runs[policy]["text"], runs[policy]["manifest"]["counts"]
    flow = re.search(
        r"([\d,]+) input records, each counted in exactly one destination: ([^.]*)\.", text
    )
    assert flow, text[:500]
    figures = {k: _int(v) for k, v in re.findall(r"(\w+) ([\d,]+)", flow.group(2))}
    assert list(figures) == list(DESTINATIONS)
    assert sum(figures.values()) == _int(flow.group(1)) == counts["input_records"]
    assert figures == {d: counts[d] for d in DESTINATIONS}


@pytest.mark.parametrize("policy", ["never", "per_participant"])
def test_the_content_sentence_adds_up_and_names_what_was_admitted(runs, policy):
    text, counts = runs[policy]["text"], runs[policy]["manifest"]["counts"]
    content = re.search(r"([\d,]+) content records: ([^.]*)\.", text)
    assert content, text
    total = _int(content.group(1))
    parts = re.findall(r"([\d,]+) (admitted|restricted|quarantined|duplicates)", content.group(2))
    assert sum(_int(n) for n, _ in parts) == total == counts["content_records"]
    admitted = sum(_int(n) for n, what in parts if what == "admitted")
    assert admitted == counts["consented_content"]
    if policy == "never":
        assert "none admitted" in content.group(2)
    else:
        assert admitted > 0


@pytest.mark.parametrize("policy", ["never", "per_participant"])
def test_no_sentence_admits_content_the_policy_keeps_out(runs, policy):
    """Every `<number> ... admitted` claim must match what went to consented content; under
    `never` that is nothing. Hypotheticals (`would have admitted`) are not claims."""
    text, counts = runs[policy]["text"], runs[policy]["manifest"]["counts"]
    claims = []
    for sentence in _sentences(text):
        if "would have admitted" in sentence or "admitted only when" in sentence:
            continue
        claims += [_int(n) for n in re.findall(r"([\d,]+)(?: [a-z_/]+){0,3} admitted\b", sentence)]
    if policy == "per_participant":
        assert claims, "the report states what was admitted"
    assert set(claims) <= {counts["consented_content"]}
    if policy == "never":
        assert counts["consented_content"] == 0
        # The ledger's verdicts are shown only as a reference the policy does not use.
        assert counts["content_consented"] > 0
        assert (
            f"for {counts['content_consented']:,} of these records; the policy never does not "
            "use it" in text
        )


def test_the_summary_line_adds_up_and_names_consented_content(runs):
    manifest = runs["per_participant"]["manifest"]
    line = summary_line(manifest)
    total = re.search(r"([\d,]+) records in = (.*)\. Report", line)
    assert total, line
    parts = re.findall(r"([\d,]+) ([a-z ]+?)(?= \+|$)", total.group(2))
    assert [name for _, name in parts] == [
        "training",
        "consented content",
        "restricted",
        "quarantined",
        "duplicates",
    ]
    assert (
        sum(_int(n) for n, _ in parts)
        == _int(total.group(1))
        == manifest["counts"]["input_records"]
    )
    assert _int(parts[1][0]) == manifest["counts"]["consented_content"] > 0


def test_a_rerun_with_another_key_is_flagged(runs, rerun):
    manifest = rerun["manifest"]
    assert manifest["key_changed"] is True
    assert manifest["previous_key_fingerprint"] == key_fingerprint(KEY.encode())
    assert manifest["pseudonym_key_fingerprint"] == key_fingerprint(OTHER_KEY.encode())
    assert "FLAGGED: the pseudonymisation key changed since the previous run" in rerun["text"]
    assert any("pseudonymisation key changed" in w for w in rerun["warnings"])
    for text in (rerun["text"], json.dumps(manifest), *rerun["warnings"]):
        assert OTHER_KEY not in text and KEY not in text


def test_the_first_run_and_a_same_key_rerun_are_not_flagged(runs):
    manifest = runs["never"]["manifest"]
    assert manifest["key_changed"] is False and "previous_key_fingerprint" not in manifest
    assert "FLAGGED: the pseudonymisation key" not in runs["never"]["text"]
    assert manifest["warnings"] == []
    assert "Warning:" not in runs["never"]["text"]


def test_per_participant_without_a_ledger_warns(runs, rerun):
    message = "--content-policy per_participant without --consent"
    assert any(w.startswith(message) for w in rerun["warnings"])
    assert any(w.startswith(message) for w in rerun["manifest"]["warnings"])
    assert f"Warning: {message}" in rerun["text"]
    # and it is true: nothing was admitted
    assert rerun["manifest"]["counts"]["consented_content"] == 0
    assert not any(w.startswith(message) for w in runs["per_participant"]["manifest"]["warnings"])
