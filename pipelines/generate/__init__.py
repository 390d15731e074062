"""Synthetic input sets with planted leaks and bad records, and their ground truth.

One module per source shape (`contract`: the v1 envelope), all drawing from one shared
meeting model: people and accounts (`model`), the consent ledger (`ledger`), planted cases
(`cases`) and the consent truth (`truth`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pipelines.generate import contract, vendor
from pipelines.generate.cases import BAD_INPUT_KINDS, DUPLICATE_KINDS, LEAK_KINDS
from pipelines.generate.contract import GENERATOR_ID, MIN_EVENTS

SOURCES = ("contract", "zoom-webhook", "zoom-qos", "webrtc-stats", "livekit-webhook")


def _vendor_source(name: str) -> vendor.VendorSource:
    """The vendor source module `name` (its module: the name with `_` for `-`)."""
    if name not in SOURCES[1:]:
        raise ValueError(f"source must be one of {SOURCES}, got {name!r}")
    module = importlib.import_module(f"pipelines.generate.{name.replace('-', '_')}")
    source: vendor.VendorSource = module.SOURCE
    return source


def generate(
    out_dir: str | Path,
    *,
    source: str = "contract",
    events: int = 20_000,
    seed: int = 0,
    shards: int = 1,
    fmt: str = "jsonl",
    date: str = "2026-11-26",
    accounts: int | None = None,
) -> dict[str, Any]:
    """Write a synthetic input set of `source`'s shape to `out_dir` and return its truth.

    `contract` (the default) writes v1 envelopes (see `contract.generate`). A vendor source
    writes `events` lines as the platform sends them (gzip JSON Lines only), the consent
    ledger and `truth.json` (see `vendor`). `accounts` customer accounts share the meetings
    (default: 50 to 500 by size for the contract, 24 for a vendor source). The same arguments
    give the same bytes. Raises ValueError on a bad argument.
    """
    if source == "contract":
        return contract.generate(
            out_dir, events=events, seed=seed, shards=shards, fmt=fmt, date=date, accounts=accounts
        )
    vendor_source = _vendor_source(source)
    if fmt != "jsonl":
        raise ValueError(f"fmt must be jsonl for --source {source} (lines as received)")
    contract.check_arguments(max(events, MIN_EVENTS), seed, shards, fmt, date)
    contract.check_accounts(accounts)
    if isinstance(events, bool) or not isinstance(events, int) or events < vendor.MIN_LINES:
        raise ValueError(f"events must be an integer >= {vendor.MIN_LINES}, got {events!r}")
    if not 1 <= shards <= events // 100:
        raise ValueError(f"shards must be from 1 to events/100 ({events // 100}), got {shards!r}")
    return vendor.write_vendor(
        out_dir,
        vendor_source,
        events=events,
        seed=seed,
        shards=shards,
        date=date,
        generator_id=GENERATOR_ID,
        accounts=vendor.VENDOR_ACCOUNTS if accounts is None else accounts,
    )


__all__ = [
    "BAD_INPUT_KINDS",
    "DUPLICATE_KINDS",
    "GENERATOR_ID",
    "LEAK_KINDS",
    "MIN_EVENTS",
    "SOURCES",
    "generate",
]
