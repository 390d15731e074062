"""Where a run's time goes, by stage: each stage's DoFns add their own wall time to a Beam
counter, which the driver reads back when the pipeline is done (`make bench` prints them).

Time is counted inside a stage's `process` only: for a generator, each step to its next output,
not the time the downstream stages take with that output. Beam is imported where it is used, so
`make bench` can name the stages without importing it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["NAMESPACE", "STAGES", "stage_seconds", "timed"]

NAMESPACE = "consentgate_stage_us"
# The stages as `make bench` lists them; `spill` parks classified chunks on disk and loads them
# back (large runs only); `context` is the side inputs: the run context (its merge included),
# duplicate keys, string and template counts and the template names.
STAGES = (
    "read",
    "classify",
    "spill",
    "context",
    "detect",
    "consent",
    "route",
    "deidentify",
    "write",
    "gate",
    "publish",
)
_F = TypeVar("_F", bound=Callable[..., Any])


def timed(stage: str) -> Callable[[_F], _F]:
    """Count the wall time a DoFn method (or a function a Map applies) spends in `stage`."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; one of {STAGES}")

    def wrap(fn: _F) -> _F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            from apache_beam.metrics import Metrics

            counter = Metrics.counter(NAMESPACE, stage)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            if not isinstance(out, Iterator):
                counter.inc(int((time.perf_counter() - start) * 1e6))
                return out
            return _timed_steps(out, counter, start)

        return inner  # type: ignore[return-value]

    return wrap


def _timed_steps(steps: Iterator[Any], counter: Any, start: float) -> Iterator[Any]:
    spent = time.perf_counter() - start
    try:
        while True:
            start = time.perf_counter()
            try:
                item = next(steps)
            except StopIteration:
                spent += time.perf_counter() - start
                return
            spent += time.perf_counter() - start
            yield item
    finally:
        counter.inc(int(spent * 1e6))


def stage_seconds(result: Any) -> dict[str, float]:
    """Seconds per stage from a finished pipeline's counters (committed, else attempted)."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except (AttributeError, NotImplementedError, KeyError):
        # A runner whose result cannot be queried for metrics: the run goes on without the
        # per-stage table (the stage times are a diagnostic, never an input to a decision).
        return {}
    seconds: dict[str, float] = {}
    for counter in counters:
        value = counter.committed if counter.committed is not None else counter.attempted
        name = counter.key.metric.name
        seconds[name] = seconds.get(name, 0.0) + (value or 0) / 1e6
    return seconds
