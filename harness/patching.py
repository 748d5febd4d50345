"""Install a wrapper in place of ``torch.export.export``, record what it does, and take it out again.

The wrappers (``harness/wrappers.py``) only transform programs. Everything around them lives here:
binding a wrapper into a drop-in function, recording each call's outcome (transformed, or the stage
that broke) and timings, showing the first program to an observer (golden artifacts), keeping references
to what each call handled until the end of the test phase (repro bundles, ``harness/repro``), and the
process-wide patch itself. The plugin keeps the patch's handle in ``config.stash``.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from harness.errors import EXPORT_STAGE, ExportWrapperError
from harness.wrappers import ExportFn, Wrapper, WrapperCall

if TYPE_CHECKING:
    from torch.export import ExportedProgram
    from torch.nn import Module

__tracebackhide__ = True
"""pytest leaves this module's frames out of tracebacks (`--full-trace` shows them)."""

Recorder = Callable[[str | None], None]
"""Told once per program: ``None`` when every stage passed, else the stage that broke."""

Timer = Callable[[tuple[float, float]], None]
"""Told once per transformed program: (seconds of the first export, seconds of the whole wrapper call)."""

Observer = Callable[[WrapperCall, "ExportedProgram"], None]
"""Told of each call's first program, as torch returned it, before any stage transforms it (golden artifacts)."""

MAX_CAPTURES = 64
"""Wrapper calls an :class:`ExportPatch` keeps for one test phase (the newest); a phase rarely makes more."""


@dataclass(eq=False)
class Capture:
    """What one wrapper call handled, by reference only: what a repro bundle needs if the phase fails.

    ``mod``, ``args``, ``kwargs`` and ``options`` are those of the first export, as the wrapper called
    torch (``strict=True`` added by a strict variant, for instance); ``first`` is its program as torch
    returned it, ``transformed`` what the wrapper returned, ``error`` what it raised instead and
    ``stage`` where (``None``: transformed; ``export``: torch's first export raised). Nothing is copied:
    a capture costs a few references and is dropped at the end of the test phase (:meth:`ExportPatch.drain_captures`).
    """

    wrapper: Wrapper
    mod: Any = None
    args: Any = ()
    kwargs: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    first: ExportedProgram | None = None
    transformed: ExportedProgram | None = None
    error: BaseException | None = None
    stage: str | None = None

    def first_export(self, args: tuple[Any, ...], kwargs: dict[str, Any], program: ExportedProgram) -> None:
        """Keep the first export's arguments (as ``torch.export.export`` takes them) and its program."""
        names = ("mod", "args", "kwargs")
        options = dict(kwargs)
        given = dict(zip(names, args, strict=False))
        given.update({name: options.pop(name) for name in names if name in options})
        self.mod, self.args, self.kwargs = given.get("mod"), given.get("args", ()), given.get("kwargs")
        self.options = options
        self.first = program


Capturer = Callable[[Capture], None]
"""Told of each wrapper call once it returned or raised (repro bundles)."""

_installed: ExportPatch | None = None


def bind(
    wrapper: Wrapper,
    original_export: ExportFn,
    record: Recorder,
    timer: Timer | None = None,
    observer: Observer | None = None,
    capture: Capturer | None = None,
) -> ExportFn:
    """The drop-in for ``torch.export.export`` that runs ``wrapper`` and reports each call.

    The first call of torch's export inside a wrapper call is "the first export": its time is the
    baseline of the wrapper's cost, its program is what the observer sees, and an exception from it
    reaches the caller unchanged (export-error tests depend on torch's types) while being counted.
    ``capture`` is told of every call (a :class:`Capture`: references to the first export's arguments
    and program, and to the transformed program or the stage error).
    """

    def export(
        mod: Module,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> ExportedProgram:
        first_seconds: list[float] = []
        call: WrapperCall
        captured = Capture(wrapper) if capture is not None else None

        def timed_export(*a: Any, **k: Any) -> ExportedProgram:
            begin = time.perf_counter()
            program = original_export(*a, **k)
            if not first_seconds:
                first_seconds.append(time.perf_counter() - begin)
                if captured is not None:
                    captured.first_export(a, k, program)
                if observer is not None:
                    observer(call, program)
            return program

        call = WrapperCall(wrapper.name, timed_export, mod, args, kwargs, options)
        start = time.perf_counter()
        try:
            program = wrapper.transform(call)
        except ExportWrapperError as exc:
            record(exc.stage)
            _captured(capture, captured, error=exc, stage=exc.stage)
            raise
        except Exception as exc:
            record(EXPORT_STAGE)
            _captured(capture, captured, error=exc, stage=EXPORT_STAGE)
            raise
        record(None)
        _captured(capture, captured, transformed=program)
        if timer is not None and first_seconds:
            timer((first_seconds[0], time.perf_counter() - start))
        return program

    export.__wrapped__ = original_export  # type: ignore[attr-defined]
    export.__export_wrapper__ = wrapper  # type: ignore[attr-defined]
    export.__name__ = "export"
    export.__qualname__ = f"export[{wrapper.name}]"
    export.__doc__ = f"torch.export.export under the {wrapper.name!r} wrapper: {wrapper.description}"
    return export


def _captured(capture: Capturer | None, captured: Capture | None, **outcome: Any) -> None:
    if capture is not None and captured is not None:
        for name, value in outcome.items():
            setattr(captured, name, value)
        capture(captured)


def _is_own_module(name: str) -> bool:
    """Modules whose references to export must stay the original: torch's own and ours."""
    return name in ("torch", "harness") or name.startswith(("torch.", "harness."))


def _rebind(old: Callable[..., Any], new: Callable[..., Any]) -> list[tuple[ModuleType, str]]:
    """Point every module-level name bound to ``old`` at ``new``, outside torch and harness."""
    rebound = []
    for module_name, module in list(sys.modules.items()):
        if module is None or _is_own_module(module_name):
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in list(namespace.items()):
            if value is old:
                namespace[attr] = new
                rebound.append((module, attr))
    return rebound


def real_export() -> ExportFn:
    """``torch.export.export`` as torch defines it, whether or not a patch is installed."""
    import torch.export

    export: ExportFn = torch.export.export
    return getattr(export, "__wrapped__", export) if hasattr(export, "__export_wrapper__") else export


class ExportPatch:
    """One installed wrapper: the drop-in function and the outcomes it has recorded since last drained."""

    def __init__(self, wrapper: Wrapper, original: ExportFn, choices: Sequence[Wrapper] = ()) -> None:
        self.wrapper = wrapper
        self.original = original
        self._outcomes: list[str | None] = []
        self._timings: list[tuple[float, float]] = []
        self._captures: deque[Capture] = deque(maxlen=MAX_CAPTURES)
        self.observer: Observer | None = None
        """Shown each call's first program while set (the golden-artifact plugin sets it around golden tests)."""
        self.capturing = False
        """Keep a :class:`Capture` of each call until :meth:`drain_captures` (set while repro bundles are on)."""
        record, timer, observe, keep = self._outcomes.append, self._timings.append, self._observe, self._capture
        self._choices = {w.name: bind(w, original, record, timer, observe, keep) for w in choices}
        self.function: ExportFn = (
            self._dispatcher() if choices else bind(wrapper, original, record, timer, observe, keep)
        )
        self.rebound: list[tuple[ModuleType, str]] = []

    def _observe(self, call: WrapperCall, program: ExportedProgram) -> None:
        if self.observer is not None:
            self.observer(call, program)

    def _capture(self, captured: Capture) -> None:
        if self.capturing:
            self._captures.append(captured)

    def _dispatcher(self) -> ExportFn:
        """One installed function that calls the current wrapper (matrix mode switches it per test)."""

        def export(*args: Any, **kwargs: Any) -> Any:
            return self._choices[self.wrapper.name](*args, **kwargs)

        export.__wrapped__ = self.original  # type: ignore[attr-defined]
        export.__export_wrapper__ = self.wrapper  # type: ignore[attr-defined]
        export.__name__ = "export"
        export.__doc__ = f"torch.export.export under one of {', '.join(self._choices)}, switched per test"
        return export

    def switch(self, wrapper: Wrapper) -> None:
        """Make ``wrapper`` (one of the ``choices`` given at install) the one every export goes through."""
        if wrapper.name not in self._choices:
            raise ValueError(f"export wrapper {wrapper.name!r} is not one of {list(self._choices)}")
        self.wrapper = wrapper
        self.function.__export_wrapper__ = wrapper  # type: ignore[attr-defined]

    def bind_into(self, module: ModuleType) -> None:
        """Point ``module``'s names for the original export at the wrapper (PyTorch-compat mode)."""
        namespace = vars(module)
        for attr, value in list(namespace.items()):
            if value is self.original:
                namespace[attr] = self.function
                self.rebound.append((module, attr))

    def drain(self) -> list[str | None]:
        """Outcomes recorded since the last call (one per program), oldest first."""
        outcomes, self._outcomes[:] = list(self._outcomes), []
        return outcomes

    def drain_timings(self) -> list[tuple[float, float]]:
        """(first export, whole call) seconds of each program transformed since the last call."""
        timings, self._timings[:] = list(self._timings), []
        return timings

    def drain_captures(self) -> list[Capture]:
        """The calls captured since the last call, oldest first (at most :data:`MAX_CAPTURES`); drops them here."""
        captures = list(self._captures)
        self._captures.clear()
        return captures


def install(wrapper: Wrapper, *, patch_attribute: bool = True, choices: Sequence[Wrapper] = ()) -> ExportPatch:
    """Make the wrapper reachable where tests look for export.

    With ``patch_attribute`` (the default) ``torch.export.export`` itself is replaced and
    every name already bound to it outside torch is rebound. Without it nothing is
    touched yet: the caller binds the wrapper into chosen modules with
    :meth:`ExportPatch.bind_into`, leaving the qualified ``torch.export.export`` as the
    escape hatch PyTorch-style suites rely on. With ``choices`` (matrix mode) the installed
    function dispatches to the current wrapper, which :meth:`ExportPatch.switch` changes.
    """
    global _installed
    if _installed is not None:
        raise RuntimeError(f"export wrapper {_installed.wrapper.name!r} is already installed")
    patch = ExportPatch(wrapper, real_export(), choices)
    if patch_attribute:
        import torch.export

        torch.export.export = patch.function
        patch.rebound = _rebind(patch.original, patch.function)
    _installed = patch
    return patch


def uninstall(patch: ExportPatch) -> None:
    """Restore the original everywhere the wrapper is bound, including modules imported since."""
    global _installed
    import torch.export

    if torch.export.export is patch.function:
        torch.export.export = patch.original
    _rebind(patch.function, patch.original)
    if _installed is patch:
        _installed = None


def installed() -> ExportPatch | None:
    """The patch in force in this process, if any."""
    return _installed
