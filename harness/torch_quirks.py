"""Narrow workarounds for torch behaviour that breaks the harness's machinery, never the program under test.

Each one is undone at the end of the run and listed in docs/findings.md. Nothing here imports torch:
loggers exist by name before torch creates them.

- torch 2.13's Python deserializer (``torch._export.serde.serialize.deserialize_torch_artifact``) logs
  "Fallback to weights_only=False succeeded ... %s ... %s" with one argument for two placeholders.
  Logging's own handlers print a "Logging error" and go on, but pytest's log capture re-raises it as a
  TypeError inside ``torch.export.load``, so a program that loads and runs fine would fail its test.
  A filter on that one logger completes the record (the warning is still logged, with its cause).
- torch's structured-trace logger (``torch.__trace``) emits DEBUG records with empty messages for
  every export (their content is in ``extra``, for the trace files ``TORCH_TRACE`` asks for); pytest
  attaches its capture handlers to that logger too, so "Captured log call" would list dozens of empty
  lines. Unless ``TORCH_TRACE`` is set (then torch writes them, and they are kept), they are dropped
  at that logger: no handler does anything with them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

DESERIALIZER_LOGGER = "torch._export.serde.serialize"
TRACE_LOGGER = "torch.__trace"


class CompleteMalformedRecord(logging.Filter):
    """Give a record whose message cannot be formatted a message that can, keeping its text and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.getMessage()
        except TypeError:
            shown = ", ".join(repr(arg) for arg in (record.args if isinstance(record.args, tuple) else (record.args,)))
            record.msg = f"{record.msg} [torch logged a malformed format string; its arguments: {shown}]"
            record.args = ()
        return True


class DropUntracedRecords(logging.Filter):
    """Let structured-trace records through only when ``TORCH_TRACE`` asks torch to write them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return bool(os.environ.get("TORCH_TRACE"))


def install() -> Callable[[], None]:
    """Apply the workarounds; return the function that undoes them."""
    deserializer = logging.getLogger(DESERIALIZER_LOGGER)
    complete = CompleteMalformedRecord()
    deserializer.addFilter(complete)
    trace = logging.getLogger(TRACE_LOGGER)
    drop = DropUntracedRecords()
    trace.addFilter(drop)

    def undo() -> None:
        deserializer.removeFilter(complete)
        trace.removeFilter(drop)

    return undo
