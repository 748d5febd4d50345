"""The harness's own exceptions, kept free of torch and pytest so anything may import them."""

from __future__ import annotations

from collections.abc import Iterable

EXPORT_STAGE = "export"
"""The stage of torch's own first export: recorded by the patch, counted apart by the summary and the report."""


class ExportWrapperError(RuntimeError):
    """A wrapper stage after the first export failed.

    Carries the wrapper and the stage so reports can group failures; the
    original exception is always chained as ``__cause__``.
    """

    def __init__(self, wrapper: str, stage: str, cause: BaseException) -> None:
        first_line = (str(cause).strip().splitlines() or [""])[0]
        super().__init__(
            f"export wrapper {wrapper!r} failed at stage {stage!r}: "
            f"{type(cause).__name__}: {first_line}"
        )
        self.wrapper = wrapper
        self.stage = stage


class UnknownWrapperError(ValueError):
    """A wrapper name that no registry entry has; the message lists the valid ones."""

    def __init__(self, name: str, source: str, valid: Iterable[str]) -> None:
        names = ", ".join(sorted(valid))
        super().__init__(f"unknown export wrapper {name!r} (from {source}); valid names: {names}")
        self.name = name
        self.source = source


class WrapperPluginError(RuntimeError):
    """An entry-point wrapper that could not be loaded or is malformed."""
