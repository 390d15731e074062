"""The one point where the read path hands vendor lines to the adapters (`run --source`)."""

from __future__ import annotations

from typing import Any

import orjson

from pipelines.chunk import EventChunk
from pipelines.config import Config
from pipelines.sources import source_modules
from pipelines.sources.adapt import adapt_lines
from pipelines.sources.declared import compile_sources

__all__ = ["SourceReader", "source_reader"]


class SourceReader:
    """Turns a raw chunk of vendor lines (or Parquet rows) into a classified EventChunk."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.contract = config.contract()
        self.sources = compile_sources(config.schemas)
        self.modules = source_modules(config.policy.input_source)

    def chunk(self, raw: Any) -> EventChunk:
        lines = raw.lines
        if raw.rows is not None:
            # A columnar file of vendor records: each row as the JSON object it holds.
            lines = [
                (raw.first_row + i, orjson.dumps(row, default=str))
                for i, row in enumerate(raw.rows)
            ]
        found = adapt_lines(
            self.contract,
            self.sources,
            self.modules,
            raw.file.index,
            lines or [],
            self.config.policy.max_nesting_depth,
        )
        return EventChunk(
            raw.file.index,
            raw.chunk_index,
            raw.file.path,
            found.tables,
            found.rejects,
            input_source=self.config.policy.input_source,
        )


def source_reader(config: Config) -> SourceReader | None:
    """A reader for vendor shapes, or None for the contract's own (the default path)."""
    if config.policy.input_source == "contract":
        return None
    return SourceReader(config)
