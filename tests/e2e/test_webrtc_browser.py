"""A real WebRTC client: Debian's headless Chromium collects getStats() snapshots, we run them.

The page (`webrtc_collector.html`) opens two RTCPeerConnections on loopback with fake audio
and video devices and a data channel carrying chat lines, and posts both sides' getStats()
every half second to a small HTTP server in this test, in the collector's line format. It
runs twice: with Chromium's defaults, and with local-IP hiding off, so that real host
addresses are in the candidates. The snapshots must hold the hard cases (candidate
addresses, ICE username fragments, certificates, audioLevel, totalAudioEnergy, data-channel
counts); `consentgate run --source webrtc-stats` must keep none of the identifying or
derived values in training and keep the transport, codec, RTP, jitter, RTT and frame-rate
figures.

Chromium hides local addresses behind mDNS names only from pages without camera or
microphone permission; this page holds both (fake UI), so the default run carries real host
addresses too. The second run turns hiding off explicitly, so that holds whatever the
browser's defaults become.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import re
import shutil
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import main
from pipelines.generate import generate
from tests.e2e.test_source_corpora import training_columns_and_strings

KEY = "test-key-not-secret-0123456789abcdef0123"
PAGE = Path(__file__).with_name("webrtc_collector.html")
CHAT_LINES = (
    "Browser chat line one: the quarterly numbers look off in row twelve",
    "Browser chat line two: can you resend the signed contract tonight",
    "Browser chat line three: my flat is on Rue des Lilas, come by at six",
)
ROUNDS = 6
INTERVAL_MS = 500
CALLER, CALLEE = "p-browser-caller", "p-browser-callee"
# Local-IP hiding off: host candidates carry the machine's addresses, not mDNS names.
IPS_VISIBLE = (
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--force-webrtc-ip-handling-policy=default",
)
# Field names (lower case, no separators) whose values are derived from the media itself
# or identify a session, a device or a certificate: none may be a training column.
WITHHELD_NAMES = (
    "audiolevel",
    "totalaudioenergy",
    "silentconcealedsamples",
    "qpsum",
    "psnr",
    "echoreturnloss",
    "address",
    "relatedaddress",
    "usernamefragment",
    "fingerprint",
    "base64certificate",
    "trackidentifier",
    "label",
    "encoderimplementation",
    "decoderimplementation",
)
# What training must keep, each by any of its likely column names (lower case, no separators).
KEPT = {
    "transport": ("bytessent", "bytesreceived", "dtlsstate", "srtpcipher", "transport"),
    "codec": ("mimetype", "codec", "clockrate", "payloadtype"),
    "rtp counters": ("packetssent", "packetsreceived", "packetslost"),
    "jitter": ("jitter",),
    "rtt": ("roundtriptime", "rtt"),
    "frame rate": ("framespersecond", "framerate", "fps"),
}
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")


class _Collector:
    """What the page posted: snapshots, the session's SDP and track labels, the end."""

    def __init__(self) -> None:
        self.snapshots: list[dict[str, Any]] = []
        self.session: dict[str, Any] = {}
        self.done: dict[str, Any] = {}
        self.finished = threading.Event()
        self.lock = threading.Lock()


def _server(collector: _Collector, page: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with collector.lock:
                if self.path == "/snapshot":
                    collector.snapshots.append(body)
                elif self.path == "/session":
                    collector.session = body
                elif self.path == "/done":
                    collector.done = body
                    collector.finished.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail("chromium is not installed: run `make browser` (installs Debian's chromium)")
    return path


def collect(tmp_path: Path, name: str, extra: tuple[str, ...]) -> _Collector:
    """Run the page in headless Chromium until it posts /done; its snapshots and session."""
    collector = _Collector()
    server = _server(collector, PAGE.read_bytes())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = {
        "account_id": "acct-browser",
        "meeting_id": f"mtg-browser-{name}",
        "caller": CALLER,
        "callee": CALLEE,
        "chat": CHAT_LINES,
        "rounds": ROUNDS,
        "interval_ms": INTERVAL_MS,
    }
    url = f"http://127.0.0.1:{server.server_address[1]}/#" + urllib.parse.quote(json.dumps(config))
    browser = subprocess.Popen(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            "--allow-loopback-in-peer-connection",
            f"--user-data-dir={tmp_path / ('profile-' + name)}",
            *extra,
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        finished = collector.finished.wait(timeout=25)
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
        server.shutdown()
        server.server_close()
    assert finished, f"{name}: the page did not finish within 25 s"
    assert "error" not in collector.done, collector.done
    return collector


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[_Collector, Path]]:
    """Both browser runs, each with its snapshots written out as a collector file."""
    tmp = tmp_path_factory.mktemp("webrtc")
    out: dict[str, tuple[_Collector, Path]] = {}
    for name, extra in (("default", ()), ("ips-visible", IPS_VISIBLE)):
        collector = collect(tmp, name, extra)
        path = tmp / f"webrtc-stats-{name}.jsonl"
        path.write_text("".join(json.dumps(s) + "\n" for s in collector.snapshots))
        out[name] = (collector, path)
    return out


def _reports(collector: _Collector, kind: str) -> list[dict[str, Any]]:
    return [s for snap in collector.snapshots for s in snap["stats"] if s["type"] == kind]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# -- the snapshots hold the hard cases ------------------------------------------------------
@pytest.mark.parametrize("name", ["default", "ips-visible"])
def test_snapshots_are_collector_lines(runs: Any, name: str) -> None:
    _, path = runs[name]
    lines = path.read_text().splitlines()
    assert len(lines) == 2 * ROUNDS
    for line in lines:
        snap = json.loads(line)
        assert set(snap) == {"collected_at", "account_id", "meeting_id", "participant_id", "stats"}
        assert snap["participant_id"] in (CALLER, CALLEE)
        assert all({"id", "type", "timestamp"} <= set(s) for s in snap["stats"])
    times = {type(json.loads(line)["collected_at"]) for line in lines}
    assert times == {str, int}, "ISO and epoch ms both present"


@pytest.mark.parametrize("name", ["default", "ips-visible"])
def test_snapshots_hold_the_hard_cases(runs: Any, name: str) -> None:
    collector, _ = runs[name]
    types = {s["type"] for snap in collector.snapshots for s in snap["stats"]}
    assert {
        "codec",
        "inbound-rtp",
        "outbound-rtp",
        "media-source",
        "transport",
        "candidate-pair",
        "local-candidate",
        "remote-candidate",
        "certificate",
        "data-channel",
        "peer-connection",
    } <= types
    audio_in = [s for s in _reports(collector, "inbound-rtp") if s["kind"] == "audio"]
    assert any("audioLevel" in s and "totalAudioEnergy" in s for s in audio_in)
    audio_src = [s for s in _reports(collector, "media-source") if s["kind"] == "audio"]
    assert any(s.get("totalAudioEnergy", 0) > 0 for s in audio_src), "fake audio has energy"
    certificates = _reports(collector, "certificate")
    assert all(s["fingerprint"] and s["base64Certificate"] for s in certificates)
    candidates = _reports(collector, "local-candidate") + _reports(collector, "remote-candidate")
    assert candidates and all(s.get("address") and s.get("usernameFragment") for s in candidates)
    video_out = [s for s in _reports(collector, "outbound-rtp") if s["kind"] == "video"]
    assert any(s.get("framesPerSecond", 0) > 0 for s in video_out)
    channels = _reports(collector, "data-channel")
    assert {s["label"] for s in channels} == {"chat"}
    assert max(s["messagesSent"] for s in channels) == len(CHAT_LINES)
    assert collector.done["received"] == list(CHAT_LINES), "the data channel carried the chat"
    assert any("a=ice-pwd:" in sdp for sdp in collector.session["sdp"])


def test_with_hiding_off_real_host_addresses_are_present(runs: Any) -> None:
    collector, _ = runs["ips-visible"]
    hosts = [s for s in _reports(collector, "local-candidate") if s["candidateType"] == "host"]
    assert any(_is_ip(s["address"]) for s in hosts), [s["address"] for s in hosts]


# Fields the generator writes that this Chromium run need not show: srflx and relay
# candidates only (no STUN or TURN server on loopback), PSNR only where the browser enables
# it, TCP candidates only when gathered before the snapshot, a remote report's RTT only once
# an RTCP report has come back (a few seconds in: not every run).
NOT_SEEN_ON_LOOPBACK = {
    "roundTripTime",
    "relatedAddress",
    "relatedPort",
    "url",
    "psnrSum",
    "psnrMeasurements",
    "tcpType",
}


def _fields(snapshots: list[dict[str, Any]]) -> dict[tuple[str, str | None], set[str]]:
    found: dict[tuple[str, str | None], set[str]] = {}
    for snap in snapshots:
        for s in snap["stats"]:
            found.setdefault((s["type"], s.get("kind")), set()).update(s)
    return found


def test_the_generated_corpus_has_the_fields_a_real_browser_sends(
    runs: Any, tmp_path: Path
) -> None:
    """`generate --source webrtc-stats` writes what Chromium writes: the same field names per
    report type, so that a schema made for one reads the other."""
    truth = generate(tmp_path, source="webrtc-stats", events=200, seed=3)
    planted = {p["line"] for p in truth["planted"]}  # undeclared fields, broken lines
    with gzip.open(tmp_path / truth["files"][0], "rb") as f:
        lines = [json.loads(line) for i, line in enumerate(f) if i not in planted]
    generated = _fields(lines)
    real = _fields([snap for collector, _ in runs.values() for snap in collector.snapshots])
    assert set(real) <= set(generated), sorted(set(real) - set(generated), key=str)
    differences = {
        key: (
            sorted(real[key] - generated[key]),
            sorted(generated[key] - real[key] - NOT_SEEN_ON_LOOPBACK),
        )
        for key in real
    }
    assert {k: v for k, v in differences.items() if v != ([], [])} == {}


# -- consentgate run --source webrtc-stats on them -------------------------------------------
@pytest.fixture(scope="module")
def published(runs: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("webrtc-run") / "out"
    argv = ["-q", "run", "--source", "webrtc-stats"]
    for _, path in runs.values():
        argv += ["--input", str(path)]
    # Through the CLI's entry point in this process: a fresh interpreter's imports cost seconds.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
        assert main([*argv, "--out", str(out)]) == 0
    yield out


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _secrets(runs: Any) -> set[str]:
    """Every collected value that identifies a host, a session or a certificate."""
    found: set[str] = set()
    for collector, _ in runs.values():
        for snap in collector.snapshots:
            for s in snap["stats"]:
                for key in (
                    "address",
                    "ip",
                    "relatedAddress",
                    "usernameFragment",
                    "iceLocalUsernameFragment",
                    "fingerprint",
                    "base64Certificate",
                    "trackIdentifier",
                    "url",
                ):
                    if isinstance(s.get(key), str) and s[key]:
                        found.add(s[key])
        for sdp in collector.session["sdp"]:
            found |= set(re.findall(r"a=ice-(?:ufrag|pwd):(\S+)", sdp))
            found |= set(re.findall(r"a=fingerprint:\S+ (\S+)", sdp))
        found |= {label for label in collector.session["labels"] if label}
    return found


def test_the_run_publishes_and_counts_every_snapshot(published: Path, runs: Any) -> None:
    manifest = json.loads((published / "manifest.json").read_text())
    assert manifest["status"] == "published"
    assert manifest["counts"]["input_records"] >= sum(len(c.snapshots) for c, _ in runs.values())


def test_no_address_credential_certificate_label_or_chat_in_training(
    published: Path, runs: Any
) -> None:
    _, values = training_columns_and_strings(published)
    joined = "\n".join(values)
    leaked = sorted(s for s in _secrets(runs) if s in joined)
    assert leaked == []
    assert [v for v in values if _IPV4.search(v) or _is_ip(v)] == []
    assert [line for line in CHAT_LINES if line in joined] == []


def test_no_derived_or_identifying_field_is_a_training_column(published: Path) -> None:
    names, _ = training_columns_and_strings(published)
    bad = sorted(n for n in names if any(w in _squash(n) for w in WITHHELD_NAMES))
    assert bad == []


def test_telemetry_is_kept(published: Path) -> None:
    names, _ = training_columns_and_strings(published)
    squashed = {_squash(n) for n in names}
    missing = [
        what
        for what, options in KEPT.items()
        if not any(option in name for name in squashed for option in options)
    ]
    assert missing == [], sorted(names)
