"""How a wrapper failure reads: its first lines name the wrapper, the stage and torch's cause.

pytest prints a failure's traceback from the innermost cause outwards and cuts the short-summary line
at the terminal's width, so the two things a reader needs first (which transformation broke, and
torch's message) can end up pages apart or cut off. This module puts them on the failure's first
lines and at the start of its short-summary message, for failures of a wrapper stage (or of the
test's own check after the wrapper transformed the program, when a repro bundle names it). The
report objects stay pytest's own, so xdist carries them unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest._code.code import ExceptionChainRepr, ReprEntry

from harness.errors import wrapper_error
from harness.recording import WRAPPER_ATTR


def cause_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}"


def headline(report: pytest.TestReport, exc: BaseException, bundle: Path | None) -> None:
    """Put wrapper, stage, cause and bundle first in ``report``'s failure text and its short summary."""
    error = wrapper_error(exc)
    longrepr = report.longrepr
    if not isinstance(longrepr, ExceptionChainRepr):
        return
    if error is not None:
        cause = error.__cause__ or error
        summary = f"[{error.wrapper}: {error.stage}] {cause_line(cause)}"
        lines = [f"export wrapper {error.wrapper!r} failed at stage {error.stage!r}", f"cause: {cause_line(cause)}"]
    elif bundle is not None:
        summary = cause_line(exc)
        wrapper = getattr(report, WRAPPER_ATTR, None)
        lines = [
            f"export wrapper {wrapper!r} transformed the program, then the test's own check failed",
            f"cause: {summary}",
        ]
    else:
        return
    if bundle is not None:
        lines.append(f"repro bundle: {bundle} (run its repro.py with plain torch)")
        summary += f" (repro: {bundle})"
    if longrepr.reprcrash is not None:
        longrepr.reprcrash.message = summary
    if longrepr.chain:
        traceback = longrepr.chain[0][0]
        header = ReprEntry([f"E   {line}" for line in lines], None, None, None, "long")
        traceback.reprentries = [header, *traceback.reprentries]
