"""The governance report on a real run folder: figures, safety of what it shows, a real browser."""

from __future__ import annotations

import copy
import gzip
import json
import re
import shutil
import subprocess
from html import unescape
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.generate import generate
from pipelines.report.data import WITHHELD, report_data
from pipelines.report.html import SECTIONS, write_report

pytestmark = pytest.mark.e2e

HOME = Path(__file__).resolve().parents[2]
REPORT_SCHEMA = json.loads((HOME / "schemas/outputs/report.json").read_text(encoding="utf-8"))
# A key that would be easy to find if it leaked into either file.
MARKER_KEY = "REPORT-MARKER-KEY-" + "q7" * 16
# Shorter strings are too likely to occur by chance in any page (ids here are 8+ characters).
MIN_ID_CHARS, MIN_CONTENT_CHARS = 6, 10
SECRET_CATEGORIES = {"identifier", "content", "free_text"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two runs of generated input into one folder, then the report of the second."""
    folder = tmp_path_factory.mktemp("input")
    truth = generate(folder, events=2000, seed=3)
    out = tmp_path_factory.mktemp("run") / "out"
    argv = [
        "-q",
        "run",
        *("--input", str(folder / "events.jsonl.gz")),
        *("--consent", str(folder / "consent.jsonl")),
        *("--content-policy", "per_participant"),
        *("--as-of", truth["consent"]["as_of"]),
        *("--out", str(out)),
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONSENTGATE_PSEUDONYM_KEY", MARKER_KEY)
        assert main(argv) == 0
        assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    html_path, json_path = map(Path, write_report(out, manifest))
    return {
        "input": folder,
        "out": out,
        "manifest": manifest,
        "html_path": html_path,
        "html": html_path.read_text(encoding="utf-8"),
        "data": json.loads(json_path.read_text(encoding="utf-8")),
        "json_text": json_path.read_text(encoding="utf-8"),
    }


def test_written_into_the_runs_staged_folder(run):
    staged = run["out"] / ".runs" / run["manifest"]["run_id"]
    assert run["html_path"] == staged / "report.html"
    assert (staged / "report.json").is_file()
    assert "consentgate governance report" in (run["out"] / "report.html").read_text("utf-8")


def test_report_json_validates_and_matches_the_manifest(run):
    data, manifest = run["data"], run["manifest"]
    counts = manifest["counts"]
    jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(data)
    assert (data["run_id"], data["status"]) == (manifest["run_id"], "published")
    assert data["summary"]["inputs"] == manifest["inputs"]
    for key in ("config_hash", "code_version", "pseudonym_key_fingerprint"):
        assert data["summary"][key] == manifest[key]
    assert data["flow"]["totals"] == {k: counts[k] for k in data["flow"]["totals"]}
    assert data["flow"]["by_record_class"] == counts["by_record_class"]
    assert data["event_types"] == counts["by_event_type"]
    assert data["quarantine"]["reasons"] == counts["quarantine_reasons"]
    assert data["quarantine"]["consent_ledger"] == counts["consent_ledger"]
    assert data["detectors"]["hits"] == counts["detector_hits"]
    consent = data["consent"]
    for key in ("content_records", "content_consented", "host_only_records"):
        assert consent[key] == counts[key]
    assert consent["host_only_participants"] == counts["host_only_participants"]
    assert consent["subject_decisions"] == counts["consent_by_reason"]
    assert sum(r["records"] for r in consent["records_by_decision"]) == counts["content_records"]
    checks = {c["name"]: c for c in data["gate"]["checks"]}
    assert checks.keys() == manifest["gate"]["checks"].keys()
    for name, check in manifest["gate"]["checks"].items():
        assert {k: checks[name][k] for k in check} == check
    ge = data["gate"]["expectations"]
    assert ge["evaluated"] == ge["successful"] > 0 and not ge["failures"]
    change = data["change"]
    assert change["previous_run_id"] == manifest["previous"]["run_id"]
    previous = manifest["previous"]["counts"]
    assert {f["name"]: f["previous"] for f in change["figures"]} == {
        f["name"]: previous[f["name"]] for f in change["figures"]
    }
    assert data["share_threshold"] == 0.05 and not change["flagged"]


class _Outline(HTMLParser):
    """Headings, tables, captions, header cells and URL-bearing attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[int, str]] = []
        self.tags: dict[str, int] = {}
        self.unscoped_th = 0
        self.urls: list[str] = []
        self.lang: str | None = None
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "html":
            self.lang = values.get("lang")
        if tag == "th" and values.get("scope") not in ("col", "row"):
            self.unscoped_th += 1
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action")]
        if re.fullmatch(r"h[1-6]", tag):
            self._heading = [tag]

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._heading is not None and tag == self._heading[0]:
            self.headings.append((int(tag[1]), "".join(self._heading[1:]).strip()))
            self._heading = None


def test_every_section_heading_present_in_order_and_accessible(run):
    page = _Outline()
    page.feed(run["html"])
    assert page.lang == "en"
    h2 = [text for level, text in page.headings if level == 2]
    assert h2 == [heading for _, heading in SECTIONS]
    levels = [level for level, _ in page.headings]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b <= a + 1 for a, b in pairwise(levels))
    assert page.tags["table"] == page.tags["caption"] > 10
    assert page.unscoped_th == 0
    assert "@media print" in run["html"]


def test_flow_chart_has_a_text_alternative(run):
    svg = re.search(r"<svg\b[^>]*>.*?</svg>", run["html"], re.S)
    assert svg is not None
    opening = svg.group(0).split(">", 1)[0]
    assert 'role="img"' in opening
    assert 'aria-labelledby="flow-title flow-desc"' in opening
    title = re.search(r'<title id="flow-title">([^<]+)</title>', svg.group(0))
    desc = re.search(r'<desc id="flow-desc">([^<]+)</desc>', svg.group(0))
    inputs = run["manifest"]["counts"]["input_records"]
    assert title and f"{inputs:,} input records" in title.group(1)
    assert desc and "service_generated to training" in desc.group(1)


def test_nothing_is_fetched_from_the_network(run):
    page = _Outline()
    page.feed(run["html"])
    assert page.tags.get("script", 0) == page.tags.get("img", 0) == page.tags.get("link", 0) == 0
    assert all(url.startswith("#") for url in page.urls), page.urls
    assert not re.search(r"url\(", run["html"])
    assert "http://" not in run["html"] and "https://" not in run["html"]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


def _input_secrets(folder: Path) -> tuple[set[str], set[str]]:
    """Identifier values and content / free-text values of the generated input."""
    categories: dict[str, dict[str, str]] = {}
    for path in (HOME / "schemas/events/v1").glob("*.json"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        categories[path.stem] = {
            name: spec.get("x-category") for name, spec in schema["properties"].items()
        }
    ids: set[str] = set()
    content: set[str] = set()
    with gzip.open(folder / "events.jsonl.gz", "rb") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            for name in ("account_id", "meeting_id", "participant_id"):
                ids.update(_strings(record.get(name)))
            payload = record.get("payload")
            fields = categories.get(str(record.get("event_type")), {})
            for name, value in (payload if isinstance(payload, dict) else {}).items():
                category = fields.get(name)
                if category == "identifier" or name in ("user_name", "email"):
                    ids.update(s for s in _strings(value) if s != "everyone")
                elif category in SECRET_CATEGORIES:
                    content.update(_strings(value))
    ids = {s for s in ids if len(s) >= MIN_ID_CHARS}
    return ids, {s for s in content if len(s.strip()) >= MIN_CONTENT_CHARS}


def test_no_raw_bytes_identifier_or_content_in_either_file(run):
    ids, content = _input_secrets(run["input"])
    assert len(ids) > 100 and len(content) > 100
    staged = run["out"] / ".runs" / run["manifest"]["run_id"]
    raws = [
        raw.decode("utf-8", "replace").strip()
        for path in sorted((staged / "quarantine").glob("*.parquet"))
        for raw in pq.read_table(path, columns=["raw"])["raw"].to_pylist()
        if raw
    ]
    assert raws
    for text in (unescape(run["html"]), run["html"], run["json_text"]):
        assert not [s for s in ids if s in text]
        assert not [s for s in content if s in text]
        assert not [r for r in raws if len(r) >= MIN_CONTENT_CHARS and r in text]


def test_the_pseudonymisation_key_is_in_neither_file(run):
    assert MARKER_KEY not in run["html"] and MARKER_KEY not in run["json_text"]
    assert MARKER_KEY[:24] not in run["html"] + run["json_text"]


def _staged_copy(run: dict[str, Any], tmp_path: Path, quarantine: pa.Table) -> tuple[Path, dict]:
    """An output folder whose staged run holds only the given quarantine table."""
    manifest = copy.deepcopy(run["manifest"])
    staged = tmp_path / ".runs" / manifest["run_id"] / "quarantine"
    staged.mkdir(parents=True)
    pq.write_table(quarantine, staged / "part-00000-00000.parquet")
    return tmp_path, manifest


def test_hostile_quarantine_values_are_withheld(run, tmp_path):
    hostile = "Ada Lovelace <ada@example.com>"
    table = pa.table(
        {
            "event_id": ["ev-1", "ev-2", "ev-3"],
            "event_type": ["qos.audio", hostile, "qos.audio"],
            "source_file": ["/data/in/events.jsonl.gz"] * 3,
            "source_line": [7, 8, 9],
            "reason": ["undeclared_field", "unknown_event_type", "detector:email"],
            "detail": [f"$.payload.{hostile}", "$.event_type", "email@message[3:18]"],
            "raw": [hostile.encode()] * 3,
        }
    )
    run_dir, manifest = _staged_copy(run, tmp_path, table)
    html_path, json_path = map(Path, write_report(run_dir, manifest, out=tmp_path / "report"))
    data = json.loads(json_path.read_text(encoding="utf-8"))
    by_line = {x["source_line"]: x for x in data["quarantine"]["examples"]}
    assert by_line[7] == {
        "reason": "undeclared_field",
        "event_type": "qos.audio",
        "source_file": "events.jsonl.gz",
        "source_line": 7,
        "detail": WITHHELD,
    }
    assert by_line[8]["event_type"] is None and by_line[8]["detail"] == "$.event_type"
    assert by_line[9]["detail"] == "email@message[3:18]"
    for text in (html_path.read_text(encoding="utf-8"), json_path.read_text(encoding="utf-8")):
        assert "ada@example.com" not in text and "Lovelace" not in text and "/data/in" not in text
    # The staged folder holds no gate or audit files: those parts say so instead of failing.
    assert data["gate"]["expectations"] is None
    assert data["consent"]["records_by_decision"] is None


@pytest.mark.parametrize(
    ("moved", "threshold", "flagged"),
    [
        pytest.param(0.06, 0.05, True, id="6pp-over-default"),
        pytest.param(0.04, 0.05, False, id="4pp-under-default"),
        pytest.param(0.05, 0.05, False, id="exactly-5pp-not-more"),
        pytest.param(0.04, 0.03, True, id="4pp-over-3pp"),
    ],
)
def test_share_moves_beyond_the_threshold_are_flagged(run, moved, threshold, flagged):
    manifest = copy.deepcopy(run["manifest"])
    counts, previous = manifest["counts"], manifest["previous"]["counts"]
    previous["input_records"] = counts["input_records"]
    shift = round(moved * counts["input_records"])
    previous["training"] = counts["training"] + shift
    previous["restricted"] = counts["restricted"] - shift
    change = report_data(Path("/nonexistent"), manifest, share_threshold=threshold)["change"]
    assert sorted(change["flagged"]) == (["restricted", "training"] if flagged else [])


def test_a_run_without_a_previous_one_says_so(run, tmp_path):
    manifest = {**copy.deepcopy(run["manifest"]), "previous": None}
    html_path, json_path = map(Path, write_report(tmp_path, manifest, out=tmp_path))
    assert json.loads(json_path.read_text(encoding="utf-8"))["change"] is None
    assert "No previous run in this output folder" in html_path.read_text(encoding="utf-8")


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail("chromium is not installed: run `make browser` (installs Debian's chromium)")
    return path


def test_a_real_browser_renders_and_prints_it(run, tmp_path):
    url = run["html_path"].as_uri()
    png, pdf = tmp_path / "report.png", tmp_path / "report.pdf"
    jobs = {
        name: [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / ('profile-' + name)}",
            *extra,
            url,
        ]
        for name, extra in {
            "screenshot": (f"--screenshot={png}", "--window-size=1280,4000"),
            "dom": ("--dump-dom",),
            "pdf": (f"--print-to-pdf={pdf}", "--no-pdf-header-footer"),
        }.items()
    }
    running = {
        name: subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for name, argv in jobs.items()
    }
    outputs = {name: process.communicate(timeout=90)[0] for name, process in running.items()}
    assert all(process.returncode == 0 for process in running.values())
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(header[16:20], "big") == 1280
    assert png.stat().st_size > 100_000
    status = re.search(r'<strong id="status-value">([^<]*)</strong>', outputs["dom"])
    assert status and status.group(1) == run["manifest"]["status"] == "published"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000
