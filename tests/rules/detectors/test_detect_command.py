"""`consentgate detect`: one JSON list of findings per input line, in order, batches or not."""

from __future__ import annotations

import json
import subprocess
import sys

from pipelines.rules.detectors import find_all


def test_detect_writes_one_line_of_findings_per_input_line() -> None:
    # Batches of two lines: several batches in one small run.
    lines = ["mail maria@contoso.example", "", "ICE restart after 3 failures", "see you at 5", "x"]
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from pipelines import cli; cli._DETECT_BATCH = 2;"
         " sys.argv = ['consentgate', 'detect']; sys.exit(cli.main())"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = [json.loads(line) for line in done.stdout.splitlines()]
    want = [
        [{"detector": f.detector, "start": f.start, "end": f.end} for f in find_all(t)]
        for t in lines
    ]
    assert out == want
    assert [row[0]["detector"] for row in out if row] == ["email", "natural_language"]
