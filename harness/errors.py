"""The harness's own exceptions, kept free of torch and pytest so anything may import them."""

from __future__ import annotations

from collections.abc import Iterable

__tracebackhide__ = True
"""pytest leaves this module's frames out of tracebacks (`--full-trace` shows them)."""

EXPORT_STAGE = "export"
"""The stage of torch's own first export: recorded by the patch, counted apart by the summary and the report."""


class ExportWrapperError(RuntimeError):
    """A wrapper stage after the first export failed.

    Carries the wrapper and the stage so reports can group failures; the
    original exception is always chained as ``__cause__``. Raised through
    :func:`stage_error`, which also keeps the original exception's type.
    """

    wrapper: str
    stage: str

    def __init__(self, wrapper: str, stage: str, cause: BaseException) -> None:
        super().__init__(f"export wrapper {wrapper!r} failed at stage {stage!r}: {_first_line(cause)}")
        self.wrapper = wrapper
        self.stage = stage


def _first_line(cause: BaseException) -> str:
    return f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}"


_TYPED: dict[type[BaseException], type[ExportWrapperError] | None] = {}


def _typed(cause_type: type[BaseException]) -> type[ExportWrapperError] | None:
    """A subclass of both ``cause_type`` and :class:`ExportWrapperError`, named like ``cause_type``.

    ``None`` where Python cannot combine them (an exception type with its own instance layout,
    such as OSError, or one that is not an ``Exception``).
    """
    if cause_type in _TYPED:
        return _TYPED[cause_type]
    combined: type[ExportWrapperError] | None = None
    if issubclass(cause_type, Exception) and not issubclass(cause_type, ExportWrapperError):
        namespace = {"__module__": cause_type.__module__, "__qualname__": cause_type.__qualname__}
        try:
            combined = type(cause_type.__name__, (cause_type, ExportWrapperError), namespace)
        except TypeError:
            combined = None
    _TYPED[cause_type] = combined
    return combined


def stage_error(wrapper: str, stage: str, cause: Exception) -> ExportWrapperError:
    """The error a wrapper stage raises: an :class:`ExportWrapperError` that keeps torch's type.

    A test written for plain ``torch.export`` may expect one of torch's exception types from the
    call (``assertRaises(torch._dynamo.exc.UserError)``), whichever stage raised it; PyTorch's own
    wrapper files let such exceptions through. So the error is an instance of the cause's own
    class (same message, same attributes) and of :class:`ExportWrapperError` (``wrapper`` and
    ``stage`` set, counted by stage, matched by ``raises=ExportWrapperError``); a note names the
    wrapper and stage in every traceback, and the cause stays chained. Where the types cannot be
    combined, a plain :class:`ExportWrapperError` is returned.
    """
    typed = _typed(type(cause))
    if typed is None:
        return ExportWrapperError(wrapper, stage, cause)
    error = typed.__new__(typed, *cause.args)
    error.__dict__.update(vars(cause))
    error.__dict__.pop("__notes__", None)
    error.wrapper, error.stage = wrapper, stage
    error.add_note(f"export wrapper {wrapper!r} failed at stage {stage!r} (torch raised {type(cause).__name__})")
    return error


class ExpectedFailure(Exception):
    """A failure that matched its ``xfail_under`` mark (``harness/marks.py``); the real one is its ``__cause__``."""


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception chained behind it (cause first, then context), without cycles."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def wrapper_error(exc: BaseException) -> ExportWrapperError | None:
    """The first :class:`ExportWrapperError` in ``exc``'s chain: which wrapper stage broke, if one did."""
    return next((e for e in chain(exc) if isinstance(e, ExportWrapperError)), None)


class UnknownWrapperError(ValueError):
    """A wrapper name that no registry entry has; the message lists the valid ones."""

    def __init__(self, name: str, source: str, valid: Iterable[str]) -> None:
        names = ", ".join(sorted(valid))
        super().__init__(f"unknown export wrapper {name!r} (from {source}); valid names: {names}")
        self.name = name
        self.source = source


class WrapperPluginError(RuntimeError):
    """An entry-point wrapper that could not be loaded or is malformed."""
