"""A plain, self-contained report.html for a run (the full governance report comes later)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

__all__ = ["write_report"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#1b1b1b}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem}
th,td{border:1px solid #bbb;padding:0.25rem 0.6rem;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#0a6b2d}.fail{color:#a4001d;font-weight:bold}
"""


def _table(caption: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{v}</td>' if isinstance(v, int) else f"<td>{html.escape(str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"


def write_report(path: str | Path, manifest: dict[str, Any]) -> None:
    """Write the run's figures from its manifest as one HTML file that opens offline."""
    counts = manifest.get("counts", {})
    gate = manifest.get("gate", {})
    status = manifest.get("status", "unknown")
    checks = gate.get("checks", {})
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>consentgate run {html.escape(manifest['run_id'])}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>consentgate run {html.escape(manifest['run_id'])}</h1>",
        f"<p>Status: <strong class='{'pass' if status == 'published' else 'fail'}'>"
        f"{html.escape(status)}</strong>. Config {html.escape(manifest.get('config_hash', ''))}, "
        f"code {html.escape(manifest.get('code_version', ''))}, "
        "pseudonym key fingerprint "
        f"{html.escape(manifest.get('pseudonym_key_fingerprint', ''))}.</p>",
        "<h2>Records by destination</h2>",
        _table(
            "Every input record is counted in exactly one destination",
            ("destination", "records"),
            [
                (k, counts.get(k, 0))
                for k in (
                    "input_records",
                    "training",
                    "consented_content",
                    "restricted",
                    "quarantine",
                    "duplicates",
                )
            ],
        ),
        "<h2>Quarantine reasons</h2>",
        _table(
            "Why records were kept out",
            ("reason", "records"),
            sorted(counts.get("quarantine_reasons", {}).items()),
        ),
        "<h2>Leak gate</h2>",
        _table(
            "Checks run on the staged training files before publishing",
            ("check", "result", "violations"),
            [
                (name, "pass" if c["passed"] else "FAIL", c["violations"])
                for name, c in sorted(checks.items())
            ],
        ),
        "<h2>Inputs</h2>",
        _table(
            "Input files",
            ("path", "bytes", "sha256"),
            [(i["path"], i["size"], i["sha256"]) for i in manifest.get("inputs", [])],
        ),
        "</body></html>\n",
    ]
    Path(path).write_text("".join(parts), encoding="utf-8")
