"""Synthetic input sets with planted leaks and bad records, and their ground truth.

One module per source shape (`contract`: the v1 envelope), all drawing from one shared
meeting model: people and accounts (`model`), the consent ledger (`ledger`), planted cases
(`cases`) and the consent truth (`truth`).
"""

from __future__ import annotations

from pipelines.generate.cases import BAD_INPUT_KINDS, DUPLICATE_KINDS, LEAK_KINDS
from pipelines.generate.contract import GENERATOR_ID, MIN_EVENTS, generate

__all__ = [
    "BAD_INPUT_KINDS",
    "DUPLICATE_KINDS",
    "GENERATOR_ID",
    "LEAK_KINDS",
    "MIN_EVENTS",
    "generate",
]
