"""The governance report of a run: `report.html` (self-contained, opens offline) and `report.json`.

Both are drawn from `report_data`, so the page and the JSON always hold the same figures. The page
carries its own CSS and inline SVG, no script, font or image from anywhere, and a content
security policy that would block them if one slipped in. Every value is HTML-escaped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from pipelines import storage
from pipelines.report.data import DEFAULT_SHARE_THRESHOLD, TOTALS, report_data

__all__ = ["SECTIONS", "render_html", "write_report"]

# (anchor, heading) of every section, in page order.
SECTIONS = (
    ("summary", "Summary"),
    ("flow", "Flow of records"),
    ("event-types", "Event types"),
    ("quarantine", "Quarantine"),
    ("detectors", "Detectors"),
    ("templates", "Strings and templates"),
    ("consent", "Consent"),
    ("gate", "Leak gate"),
    ("change", "Change since the previous run"),
)

_DESTINATION_COLOURS = {
    "training": "#1f6fb2",
    "consented_content": "#2e8b57",
    "restricted": "#c77c0e",
    "quarantine": "#b3261e",
    "duplicate": "#7a7a7a",
}

_STYLE = """
:root{color-scheme:light}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:66rem;padding:0 1rem;color:#1b1b1b;background:#fff;line-height:1.45}
h1{font-size:1.7rem;margin-bottom:.2rem}
h2{font-size:1.3rem;border-bottom:2px solid #d0d7de;padding-bottom:.2rem;margin-top:2.2rem}
h3{font-size:1.05rem;margin-top:1.4rem}
nav ol{columns:2;padding-left:1.4rem}
a{color:#0b5cad}
.verdict{font-size:1.1rem;padding:.6rem .9rem;border-left:6px solid #0a6b2d;background:#eef7f0}
.verdict.bad{border-left-color:#a4001d;background:#fbeeee}
.pass{color:#0a6b2d;font-weight:600}
.fail{color:#a4001d;font-weight:700}
.flag{color:#a4001d;font-weight:700}
.note{color:#444;font-size:.92rem}
table{border-collapse:collapse;margin:.4rem 0 1.4rem;font-size:.92rem;min-width:min(34rem,100%)}
caption{text-align:left;font-weight:600;padding:.3rem 0;caption-side:top}
th,td{border:1px solid #c4c9cf;padding:.25rem .55rem;text-align:left;vertical-align:top}
thead th{background:#f1f3f5}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.z{color:#8a8a8a}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:.85rem}
.hash{word-break:break-all}
figure{margin:.5rem 0 1rem}
figure svg{max-width:100%;height:auto}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:-.05em;
border:1px solid #555;print-color-adjust:exact;-webkit-print-color-adjust:exact}
@media print{
 @page{margin:14mm}
 body{margin:0;max-width:none;font-size:10pt;color:#000;background:#fff}
 nav{display:none}
 a{color:#000;text-decoration:none}
 .verdict,.verdict.bad,thead th{background:#fff}
 h2,h3,caption{break-after:avoid}
 tr,figure,.verdict{break-inside:avoid}
 thead{display:table-header-group}
 svg path{print-color-adjust:exact;-webkit-print-color-adjust:exact}
}
"""
# No network, no script: everything the page needs is in the page.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _n(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


def _pp(change: float | None) -> str:
    return "—" if change is None else f"{change * 100:+.1f} pp"


class _Cell:
    """A table cell: its text (escaped on output) and whether it is a number."""

    def __init__(self, text: Any, *, numeric: bool = False, css: str = "", raw: bool = False):
        self.html = str(text) if raw else _e(text)
        self.numeric = numeric
        self.css = css


def _num(value: int | None) -> _Cell:
    return _Cell(_n(value), numeric=True, css="z" if value == 0 else "")


def _table(
    caption: str,
    header: Sequence[str | tuple[str, bool]],
    rows: Iterable[Sequence[Any]],
    *,
    empty: str = "None.",
) -> str:
    """A table whose first column names the row (`<th scope="row">`)."""
    rows = list(rows)
    if not rows:
        return f'<p class="note">{_e(caption)}: {_e(empty)}</p>'
    heads = []
    for h in header:
        name, numeric = (h, False) if isinstance(h, str) else h
        heads.append(f'<th scope="col"{" class=n" if numeric else ""}>{_e(name)}</th>')
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            cell = value if isinstance(value, _Cell) else _Cell(value)
            classes = " ".join(c for c in ("n" if cell.numeric else "", cell.css) if c)
            attr = f' class="{classes}"' if classes else ""
            tag = "th" if i == 0 else "td"
            scope = ' scope="row"' if i == 0 else ""
            cells.append(f"<{tag}{scope}{attr}>{cell.html}</{tag}>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<table><caption>{_e(caption)}</caption>"
        f"<thead><tr>{''.join(heads)}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _verdict(passed: bool | None) -> _Cell:
    if passed is None:
        return _Cell("not run")
    return _Cell("pass" if passed else "FAIL", css="pass" if passed else "fail")


def _section(anchor: str, heading: str, body: str) -> str:
    return (
        f'<section id="{anchor}" aria-labelledby="{anchor}-h">'
        f'<h2 id="{anchor}-h">{_e(heading)}</h2>{body}</section>'
    )


def _summary(data: Mapping[str, Any]) -> str:
    s = data["summary"]
    facts = [
        ("Run id", _Cell(data["run_id"], css="mono")),
        ("Status", s["status"]),
        ("Leak gate", _verdict(s["gate_passed"])),
        ("Started", s["started_at"] or "—"),
        ("Run time", "—" if s["duration_s"] is None else f"{s['duration_s']:.1f} s"),
        ("Runner", s["runner"] or "—"),
        ("Code version", s["code_version"] or "—"),
        ("Config hash", _Cell(s["config_hash"] or "—", css="mono hash")),
        ("Content policy", s["content_policy"] or "—"),
        ("Consent as of", s["consent_as_of"] or "—"),
        ("Pseudonym key version", s["pseudonym_key_version"] or "—"),
        ("Pseudonym key fingerprint", _Cell(s["pseudonym_key_fingerprint"] or "—", css="mono")),
        ("Published run", _Cell(s["published_run_id"] or "none", css="mono")),
        ("Previous run", _Cell(s["previous_run_id"] or "none", css="mono")),
        ("Warnings", "; ".join(s["warnings"]) or "none"),
        ("Purged after publication", _purges_text(s["purges"]) or "never"),
    ]
    return (
        _table("Run facts", ("fact", "value"), facts)
        + '<p class="note">The pseudonymisation key itself is never written anywhere; the '
        "fingerprint identifies which key was used.</p>"
        + "<h3>Input files</h3>"
        + _table(
            "Input files read by this run, with their size and SHA-256",
            ("path", ("bytes", True), "sha256"),
            [
                (i["path"], _num(i["size"]), _Cell(i["sha256"], css="mono hash"))
                for i in s["inputs"]
            ],
            empty="no input files recorded",
        )
    )


def _purges_text(purges: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(
        f"{_n(p['records'])} content records withdrawn at {p['purged_at']} (consent as of "
        f"{p['consent_as_of']}; {', '.join(f'{r} {n:,}' for r, n in p['reasons'].items())}): "
        f"run {p['of_run_id']} became run {p['run_id']}"
        for p in purges
    )


def _flow_svg(flow: Mapping[str, Any]) -> str:
    """A Sankey-like chart: record classes on the left, destinations on the right."""
    by_class: Mapping[str, Mapping[str, int]] = flow["by_record_class"]
    links = [
        (cls, dest, by_class[cls].get(dest, 0))
        for cls in flow["record_classes"]
        for dest in flow["destinations"]
        if by_class[cls].get(dest, 0) > 0
    ]
    total = sum(n for _, _, n in links)
    if not total:
        return '<p class="note">No records to draw.</p>'
    width, top, gap, span = 820, 34, 16, 320
    left_x, right_x, bar = 190, 610, 14
    classes = [c for c in flow["record_classes"] if any(link[0] == c for link in links)]
    dests = [d for d in flow["destinations"] if any(link[1] == d for link in links)]
    gaps = gap * (max(len(classes), len(dests)) - 1)
    scale = (span - gaps) / total
    widths = {(c, d): max(n * scale, 1.5) for c, d, n in links}

    def stack(names: list[str], size: Mapping[str, float]) -> dict[str, float]:
        y, at = float(top), {}
        for name in names:
            at[name] = y
            y += size[name] + gap
        return at

    left_size = {c: sum(w for (c2, _), w in widths.items() if c2 == c) for c in classes}
    right_size = {d: sum(w for (_, d2), w in widths.items() if d2 == d) for d in dests}
    left_at, right_at = stack(classes, left_size), stack(dests, right_size)
    height = int(
        max(
            left_at[classes[-1]] + left_size[classes[-1]],
            right_at[dests[-1]] + right_size[dests[-1]],
        )
        + 16
    )
    class_totals = {c: sum(n for c2, _, n in links if c2 == c) for c in classes}
    dest_totals = {d: sum(n for _, d2, n in links if d2 == d) for d in dests}

    parts = []
    left_off = dict(left_at)
    right_off = dict(right_at)
    mid = (left_x + bar + right_x) / 2
    for cls, dest, n in links:
        w = widths[(cls, dest)]
        y0, y1 = left_off[cls], right_off[dest]
        left_off[cls] += w
        right_off[dest] += w
        x0, x1 = left_x + bar, right_x
        path = (
            f"M{x0},{y0:.2f} C{mid:.1f},{y0:.2f} {mid:.1f},{y1:.2f} {x1},{y1:.2f} "
            f"L{x1},{y1 + w:.2f} C{mid:.1f},{y1 + w:.2f} {mid:.1f},{y0 + w:.2f} {x0},{y0 + w:.2f} Z"
        )
        parts.append(
            f'<path d="{path}" fill="{_DESTINATION_COLOURS.get(dest, "#999")}" '
            f'fill-opacity="0.45" stroke="none"><title>{_e(cls)} to {_e(dest)}: '
            f"{_n(n)} records</title></path>"
        )
    for cls in classes:
        y, h = left_at[cls], left_size[cls]
        parts.append(f'<rect x="{left_x}" y="{y:.2f}" width="{bar}" height="{h:.2f}" fill="#444"/>')
        parts.append(
            f'<text x="{left_x - 8}" y="{y + h / 2:.2f}" text-anchor="end" '
            f'dominant-baseline="middle">{_e(cls)} {_n(class_totals[cls])}</text>'
        )
    for dest in dests:
        y, h = right_at[dest], right_size[dest]
        colour = _DESTINATION_COLOURS.get(dest, "#999")
        parts.append(
            f'<rect x="{right_x}" y="{y:.2f}" width="{bar}" height="{h:.2f}" fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{right_x + bar + 8}" y="{y + h / 2:.2f}" '
            f'dominant-baseline="middle">{_e(dest)} {_n(dest_totals[dest])}</text>'
        )
    parts.append(
        f'<text x="{left_x + bar}" y="18" text-anchor="end" font-weight="600">record class</text>'
        f'<text x="{right_x}" y="18" font-weight="600">destination</text>'
    )
    description = "; ".join(f"{c} to {d}: {n:,}" for c, d, n in links)
    totals = flow["totals"]
    title = f"Flow of {totals['input_records']:,} input records from record class to destination"
    return (
        '<figure><svg role="img" aria-labelledby="flow-title flow-desc" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'font-family="system-ui,sans-serif" font-size="13" fill="#1b1b1b">'
        f'<title id="flow-title">{_e(title)}</title>'
        f'<desc id="flow-desc">{_e(description)}.</desc>'
        + "".join(parts)
        + '</svg><figcaption class="note">Band widths are proportional to records (small '
        "flows are drawn at least 1.5 px wide). The table below holds the same figures."
        "</figcaption></figure>"
    )


def _flow(data: Mapping[str, Any]) -> str:
    flow = data["flow"]
    totals = flow["totals"]
    dests = flow["destinations"]
    by_class = flow["by_record_class"]
    rows = []
    for cls in flow["record_classes"]:
        row = by_class[cls]
        rows.append([cls, *(_num(row.get(d, 0)) for d in dests), _num(sum(row.values()))])
    rows.append(
        [
            _Cell("<strong>all classes</strong>", raw=True),
            *(_num(sum(by_class[c].get(d, 0) for c in by_class)) for d in dests),
            _num(totals["input_records"]),
        ]
    )
    legend = " ".join(
        f'<span class="swatch" style="background:{_DESTINATION_COLOURS[d]}"></span>{_e(d)}'
        for d in dests
        if d in _DESTINATION_COLOURS
    )
    conserved = totals["input_records"] == sum(totals[k] for k in TOTALS[1:])
    purged = data["consent"]["content_purged"]
    named = {k: f"{_e(k)} {_n(totals[k])}" for k in TOTALS[1:]}
    if purged:
        named["restricted"] += f" (of them {_n(purged)} purged after publication)"
    return (
        f"<p>{_n(totals['input_records'])} input records, each counted in exactly one "
        "destination: "
        + ", ".join(named.values())
        + ". "
        + (
            '<span class="pass">The destinations add up to the input.</span>'
            if conserved
            else '<span class="fail">The destinations do not add up to the input.</span>'
        )
        + "</p>"
        + _flow_svg(flow)
        + f'<p class="note" aria-hidden="true">{legend}</p>'
        + _table(
            "Input records by record class and destination",
            ("record class", *((d, True) for d in dests), ("total", True)),
            rows,
        )
    )


def _event_types(data: Mapping[str, Any]) -> str:
    dests = data["flow"]["destinations"]
    rows = [
        [_Cell(name, css="mono"), *(_num(row.get(d, 0)) for d in dests), _num(sum(row.values()))]
        for name, row in data["event_types"].items()
    ]
    return _table(
        "Records per event type by destination",
        ("event type", *((d, True) for d in dests), ("total", True)),
        rows,
        empty="no events",
    )


def _quarantine(data: Mapping[str, Any]) -> str:
    q = data["quarantine"]
    out = [
        f"<p>{_n(q['records'])} input records quarantined. Examples show the event type (— "
        "when the record has none of the contract's types), the source file name and line, the "
        "reason and its detail (a field path, or detector names and character positions). "
        "Record bytes, identifiers and content are never shown.</p>",
        _table(
            "Quarantined records by reason",
            ("reason", ("records", True)),
            [(_Cell(r, css="mono"), _num(n)) for r, n in q["reasons"].items()],
            empty="no record was quarantined",
        ),
    ]
    ledger = q["consent_ledger"]
    if ledger:
        out.append(
            _table(
                f"Consent ledger: {ledger['rows']:,} rows, {ledger['valid']:,} valid, "
                f"{ledger['quarantined']:,} quarantined (not counted in input records)",
                ("reason", ("rows", True)),
                [(_Cell(r, css="mono"), _num(n)) for r, n in sorted(ledger["reasons"].items())],
                empty="every ledger row was valid",
            )
        )
    if q["examples_available"]:
        out.append(
            _table(
                f"Examples, at most {q['examples_per_reason']} per reason",
                ("reason", "event type", "source file", ("line", True), "detail"),
                [
                    (
                        _Cell(x["reason"], css="mono"),
                        _Cell(x["event_type"] or "—", css="mono"),
                        x["source_file"],
                        _num(x["source_line"]),
                        _Cell(x["detail"] or "—", css="mono"),
                    )
                    for x in q["examples"]
                ],
                empty="none",
            )
        )
    else:
        out.append(
            '<p class="note">The staged quarantine files of this run are gone; no examples.</p>'
        )
    return "".join(out)


def _detectors(data: Mapping[str, Any]) -> str:
    d = data["detectors"]
    fields = list(d["by_field"])
    hits = d["hits"]
    rows = [
        [
            _Cell(det, css="mono"),
            *(_num(hits.get(f"{det}@{f}", 0)) for f in fields),
            _num(total),
        ]
        for det, total in d["by_detector"].items()
    ]
    if rows:
        rows.append(
            [
                _Cell("<strong>all detectors</strong>", raw=True),
                *(_num(d["by_field"][f]) for f in fields),
                _num(sum(d["by_field"].values())),
            ]
        )
    return (
        "<p>Findings of the detectors in the free text of service-generated records, by "
        "detector and field. A record can have several findings.</p>"
        + _table(
            "Detector hits by detector and field",
            ("detector", *((f, True) for f in fields), ("total", True)),
            rows,
            empty="no detector found anything",
        )
    )


def _content_split(c: Mapping[str, Any]) -> str:
    """Where the content records went, every one of them named, adding up to the total."""
    by_dest = c["content_by_destination"]
    total = sum(by_dest.values())
    admitted = by_dest.get("consented_content", 0)
    parts = [
        f"{_n(admitted)} admitted to training/consented_content" if admitted else "none admitted"
    ]
    restricted = by_dest.get("restricted", 0)
    if restricted:
        purged = c["content_purged"]
        parts.append(
            f"{_n(restricted)} restricted"
            + (f" ({_n(purged)} of them purged after publication)" if purged else "")
        )
    for dest, words in (("quarantine", "quarantined"), ("duplicate", "duplicates")):
        if by_dest.get(dest):
            parts.append(f"{_n(by_dest[dest])} {words}")
    others = sorted(set(by_dest) - {"consented_content", "restricted", "quarantine", "duplicate"})
    parts += [f"{_n(by_dest[d])} {_e(d)}" for d in others]
    return f"{_n(total)} content records: " + ", ".join(parts) + "."


def _templates(data: Mapping[str, Any]) -> str:
    t = data["templates"]
    k = "k" if t["k"] is None else f"k = {t['k']}"
    ways = t["totals"]
    intro = (
        "<p>Every string of a service record reaches training as a value at least "
        f"{_e(k)} distinct accounts produced in that field, as its <em>template</em> (variable "
        "parts masked by type: <code>&lt;num&gt;</code>, <code>&lt;hex&gt;</code>, "
        "<code>&lt;path&gt;</code>, ...) when that is common or approved, or not at all "
        "(published as null, the field named in <code>withheld_fields</code>). Values this run: "
        f"{_n(ways['value'])} published as they are, {_n(ways['template'])} as their template, "
        f"{_n(ways['withheld'])} withheld.</p>"
    )
    decisions = _table(
        "String values by field and how they were published",
        ("field", ("as the value", True), ("as its template", True), ("withheld", True)),
        [
            (_Cell(f, css="mono"), _num(d["value"]), _num(d["template"]), _num(d["withheld"]))
            for f, d in t["decisions"].items()
        ],
        empty="no string field reached training",
    )
    how = f'<p class="note">How to approve one: {_e(t["how_to_approve"])}</p>'
    if not t["available"]:
        return (
            intro
            + decisions
            + '<p class="note">This run folder has no template summary (a run from an older '
            "version): template lists are not available.</p>" + how
        )
    published, short = t["published"], t["short_of_k"]
    listed_pub = _table(
        f"Templates that earned publication ({_n(published['count'])}; at least {k} accounts, "
        "or approved in configs/strings.json), most common first",
        ("field", "template", ("accounts (counted up to k)", True)),
        [
            (_Cell(r["field"], css="mono"), _Cell(r["masked"], css="mono"), _num(r["accounts"]))
            for r in published["listed"]
        ],
        empty="none",
    )
    listed_short = _table(
        f"Templates short of {k} ({_n(short['count'])}), most accounts first: reference and "
        "count only",
        ("field", "reference", ("accounts", True)),
        [
            (_Cell(r["field"], css="mono"), _Cell(r["ref"], css="mono"), _num(r["accounts"]))
            for r in short["listed"]
        ],
        empty="none",
    )
    return (
        intro
        + decisions
        + f"<p>{_n(t['distinct_templates'])} distinct templates in this run's string fields; "
        f"{_n(t['approved_seen'])} of them approved in <code>configs/strings.json</code>.</p>"
        + listed_pub
        + listed_short
        + '<p class="note">A template short of k is shown by its reference (a keyed hash of '
        "field and template, made with the run's pseudonym key) and account count, never by "
        "its text: it may be one customer's words. At most "
        f"{len(short['listed'])} are listed here; <code>consentgate templates RUN_DIR</code> "
        "lists them all.</p>" + how
    )


def _consent(data: Mapping[str, Any]) -> str:
    c = data["consent"]
    policy = c["content_policy"] or "unknown"
    if policy == "per_participant":
        intro = (
            f"Content policy <code>per_participant</code>, consent as of {_e(c['as_of'])}: a "
            "content record is admitted only when every one of its subjects consented for "
            "themselves."
        )
        ledger = ""
    else:
        intro = (
            f"Content policy <code>{_e(policy)}</code>: no customer content goes to training, "
            "whatever the consent ledger says."
        )
        # What the ledger says is still shown (the host-only gap rests on it), but as what it
        # is: a verdict this policy does not use, never as records admitted.
        ledger = (
            f'<p class="note">For reference only: the ledger holds every subject\'s own consent '
            f"for {_n(c['content_consented'])} of these records; the policy "
            f"<code>{_e(policy)}</code> does not use it.</p>"
        )
    out = [f"<p>{intro} {_content_split(c)}</p>{ledger}"]
    decisions = c["records_by_decision"]
    if decisions is None:
        out.append('<p class="note">The audit table of this run is gone; no per-reason split.</p>')
    else:
        out.append(
            _table(
                "Content records by decision and reason",
                ("destination", "reason", ("records", True)),
                [
                    (d["destination"], _Cell(d["reason"], css="mono"), _num(d["records"]))
                    for d in decisions
                ],
                empty="no content records",
            )
        )
    out.append(
        _table(
            "Consent verdicts per content subject (one record can have several subjects)",
            ("verdict", ("subject decisions", True)),
            [(_Cell(r, css="mono"), _num(n)) for r, n in c["subject_decisions"].items()],
            empty="none",
        )
    )
    out.append(
        "<h3>Host-only gap</h3>"
        "<p>What a rule where a host's or admin's grant covers everyone would have admitted "
        "beyond the real decision. It is never used for routing.</p>"
        + _table(
            "Content a host-only rule would have admitted without the subjects' own consent",
            ("measure", ("count", True)),
            [
                ("records", _num(c["host_only_records"])),
                ("participants (distinct subjects)", _num(c["host_only_participants"])),
            ],
        )
    )
    return "".join(out)


def _gate(data: Mapping[str, Any]) -> str:
    g = data["gate"]
    verdict = (
        "not run"
        if g["passed"] is None
        else (
            '<span class="pass">passed</span>'
            if g["passed"]
            else '<span class="fail">FAILED</span>'
        )
    )
    out = [
        f"<p>The leak gate {verdict}: nothing reaches training unless every check passes. "
        "Examples name files, columns and row positions, never values.</p>",
        _table(
            "Leak gate checks",
            ("check", "result", ("violations", True), ("rows checked", True), "examples"),
            [
                (
                    _Cell(c["name"], css="mono"),
                    _verdict(c["passed"]),
                    _num(c["violations"]),
                    _num(c["rows_checked"]),
                    _Cell("<br>".join(_e(x) for x in c["examples"]) or "—", raw=True),
                )
                for c in g["checks"]
            ],
            empty="no check ran",
        ),
        "<h3>Great Expectations</h3>",
    ]
    ge = g["expectations"]
    if ge is None:
        out.append('<p class="note">No expectation results were saved for this run.</p>')
        return "".join(out)
    out.append(
        f"<p>{len(ge['suites'])} suite(s) run over {len(ge['validations'])} staged table(s): "
        f"{_n(ge['evaluated'])} expectations evaluated, {_n(ge['successful'])} met, "
        f"{_n(ge['unsuccessful'])} failed.</p>"
    )
    out.append(
        _table(
            "Expectation suites",
            ("suite", ("tables", True), ("evaluated", True), ("met", True), ("failed", True)),
            [
                (
                    _Cell(name, css="mono"),
                    _num(s["validations"]),
                    _num(s["evaluated"]),
                    _num(s["successful"]),
                    _Cell(
                        _n(s["unsuccessful"]), numeric=True, css="fail" if s["unsuccessful"] else ""
                    ),
                )
                for name, s in ge["suites"].items()
            ],
        )
    )
    out.append(
        _table(
            "Expectation failures by suite, event type, expectation and column",
            ("suite", "event type", "expectation", "column", ("unexpected", True), "rows"),
            [
                (
                    _Cell(f["suite"], css="mono"),
                    _Cell(f["event_type"] or "—", css="mono"),
                    _Cell(f["expectation"] or "—", css="mono"),
                    _Cell(f["column"] or "—", css="mono"),
                    _num(f["unexpected_count"]),
                    ", ".join(str(r) for r in f["unexpected_rows"]) or "—",
                )
                for f in ge["failures"]
            ],
            empty="every expectation was met",
        )
    )
    out.append(
        _table(
            "Expectation results per staged table",
            ("suite / event type", ("rows", True), ("evaluated", True), ("failed", True), "result"),
            [
                (
                    _Cell(v["key"], css="mono"),
                    _num(v["rows"]),
                    _num(v["evaluated"]),
                    _num(v["unsuccessful"]),
                    _verdict(v["success"]),
                )
                for v in ge["validations"]
            ],
        )
    )
    return "".join(out)


def _change(data: Mapping[str, Any]) -> str:
    threshold = data["share_threshold"]
    rule = (
        f"A destination is flagged when its share of input records moves by more than "
        f"{threshold * 100:g} percentage points (the report's share threshold, default "
        f"{DEFAULT_SHARE_THRESHOLD * 100:g})."
    )
    ch = data["change"]
    if ch is None:
        return f"<p>No previous run in this output folder. {_e(rule)}</p>"
    flagged = ch["flagged"]
    key = ch.get("key") or {}
    if key.get("changed"):
        key_text = (
            '<p class="flag" id="key-changed">FLAGGED: the pseudonymisation key changed since '
            f"the previous run (fingerprint {_e(key['previous_fingerprint'])}, now "
            f"{_e(key['fingerprint'])}). Every pseudonym in this run differs from that run's: "
            "joins across the two runs no longer match.</p>"
        )
    elif key.get("previous_fingerprint"):
        key_text = '<p class="pass">Same pseudonymisation key as the previous run.</p>'
    else:
        key_text = '<p class="note">The previous run\'s key fingerprint is not recorded.</p>'
    out = [
        key_text,
        f"<p>Compared with run <code>{_e(ch['previous_run_id'])}</code> "
        f"({_e(ch['previous_status'])}). {_e(rule)} "
        + (
            f'<span class="flag">Flagged: {_e(", ".join(flagged))}.</span>'
            if flagged
            else '<span class="pass">No share moved beyond the threshold.</span>'
        )
        + "</p>",
        _table(
            "Main counts against the previous run",
            (
                "figure",
                ("previous", True),
                ("this run", True),
                ("change", True),
                ("previous share", True),
                ("share", True),
                ("share change", True),
                "flag",
            ),
            [
                (
                    _Cell(f["name"], css="mono"),
                    _num(f["previous"]),
                    _num(f["current"]),
                    _Cell(f"{f['delta']:+,}", numeric=True),
                    _Cell(_pct(f["previous_share"]), numeric=True),
                    _Cell(_pct(f["share"]), numeric=True),
                    _Cell(_pp(f["share_change"]), numeric=True),
                    _Cell("FLAGGED", css="flag") if f["flagged"] else "",
                )
                for f in ch["figures"]
            ],
        ),
        _table(
            "Event types whose counts changed",
            ("event type", "destination", ("previous", True), ("this run", True), ("change", True)),
            [
                (
                    _Cell(t["event_type"], css="mono"),
                    t["destination"],
                    _num(t["previous"]),
                    _num(t["current"]),
                    _Cell(f"{t['delta']:+,}", numeric=True),
                )
                for t in ch["event_types"]
            ],
            empty="no event type changed",
        ),
    ]
    return "".join(out)


def _ledger_unreadable(rows: int) -> str:
    """The banner of a run whose ledger failed closed as a whole: it comes before anything."""
    if not rows:
        return ""
    return (
        '<p class="verdict bad" id="ledger-unreadable"><strong>Consent ledger unreadable: no '
        f"content of this run was admitted.</strong> {_n(rows)} ledger row(s) named no readable "
        "subject or account, so every content record is restricted "
        "(<code>no_consent:ledger_unreadable</code>).</p>"
    )


def render_html(data: Mapping[str, Any]) -> str:
    """The report page for `report_data` output."""
    run_id, status = data["run_id"], data["status"]
    gate_passed = data["summary"]["gate_passed"]
    good = status == "published" and gate_passed
    gate_text = "not run" if gate_passed is None else ("passed" if gate_passed else "failed")
    bodies = {
        "summary": _summary(data),
        "flow": _flow(data),
        "event-types": _event_types(data),
        "quarantine": _quarantine(data),
        "detectors": _detectors(data),
        "templates": _templates(data),
        "consent": _consent(data),
        "gate": _gate(data),
        "change": _change(data),
    }
    toc = "".join(f'<li><a href="#{a}">{_e(h)}</a></li>' for a, h in SECTIONS)
    return "".join(
        [
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>consentgate governance report, run {_e(run_id)}</title>",
            f"<style>{_STYLE}</style></head><body><header>",
            "<h1>consentgate governance report</h1>",
            f"<p>Run <code>{_e(run_id)}</code></p>",
            f'<p class="verdict{"" if good else " bad"}" id="status">Status: '
            f'<strong id="status-value">{_e(status)}</strong>. Leak gate: '
            f"<strong>{_e(gate_text)}</strong>.</p>",
            *(
                f'<p class="verdict bad" role="alert">Warning: {_e(w)}.</p>'
                for w in data["summary"]["warnings"]
            ),
            *(
                f'<p class="verdict" id="purged">Purged after publication: {_e(_purges_text([p]))}.'
                " The figures below are those of the purged version.</p>"
                for p in data["summary"]["purges"]
            ),
            _ledger_unreadable(data["summary"].get("ledger_unreadable_rows", 0)),
            f'</header><nav aria-label="Sections"><ol>{toc}</ol></nav><main>',
            *(_section(a, h, bodies[a]) for a, h in SECTIONS),
            "</main></body></html>\n",
        ]
    )


def write_report(
    run_dir: str | Path,
    manifest: dict[str, Any],
    *,
    out: str | Path | None = None,
    share_threshold: float = DEFAULT_SHARE_THRESHOLD,
) -> tuple[str, str]:
    """Write `report.html` and `report.json` for the run `manifest` describes.

    `run_dir` is the output folder (`--out DIR`, local or remote); the files go to `out`, by
    default the run's staged folder `run_dir/.runs/<run_id>/`. Returns the two paths.
    """
    target = (
        str(out) if out is not None else storage.join(str(run_dir), ".runs", manifest["run_id"])
    )
    data = report_data(run_dir, manifest, share_threshold=share_threshold)
    html_path, json_path = storage.join(target, "report.html"), storage.join(target, "report.json")
    storage.write_bytes(json_path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())
    storage.write_bytes(html_path, render_html(data).encode("utf-8"))
    return html_path, json_path
