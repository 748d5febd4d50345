"""``xfail_under`` and ``skip_under``: expected failures and skips that apply only under named wrappers.

An expected failure is pytest's strict xfail (an unexpected pass fails the run, so stale marks get
removed) narrowed to its cause: ``raises=`` limits the exception type and ``match=`` a regular
expression searched in the failure's messages (the exception and every cause chained behind it, so
torch's own message behind an :class:`~harness.errors.ExportWrapperError` counts). Any other failure
of the test is a real failure. pytest's xfail has no ``match``; it is done here by turning a
failure that matches into :class:`ExpectedFailure` (chained to it) and telling pytest to expect
exactly that type.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass

import pytest

from harness.errors import ExpectedFailure, chain
from harness.registry import available_wrappers
from harness.wrappers import Wrapper

__tracebackhide__ = True
"""pytest leaves this module's frames out of tracebacks (`--full-trace` shows them)."""

XFAIL = "xfail_under"
SKIP = "skip_under"
XFAIL_KEYWORDS = frozenset({"reason", "raises", "match"})
SKIP_KEYWORDS = frozenset({"reason"})

XFAIL_HELP = (
    f"{XFAIL}(*wrappers, reason, raises=None, match=None): strict xfail when the run's export wrapper is one "
    "of *wrappers, only for a failure of type raises whose message (or a chained cause's) matches the regex "
    "match; reason must say what torch does wrong"
)
SKIP_HELP = (
    f"{SKIP}(*wrappers, reason): skip when the run's export wrapper is one of *wrappers; "
    "reason must say why the test tells nothing there (a skip is reported, never silent)"
)


@dataclass(frozen=True)
class Expectation:
    """What an ``xfail_under`` mark accepts as its failure."""

    wrapper: str
    reason: str
    raises: type[BaseException] | tuple[type[BaseException], ...] | None
    match: re.Pattern[str] | None

    def accepts(self, exc: BaseException) -> bool:
        if self.raises is not None and not any(isinstance(e, self.raises) for e in chain(exc)):
            return False
        return self.match is None or any(self.match.search(f"{type(e).__name__}: {e}") for e in chain(exc))

    def describe(self) -> str:
        parts = [] if self.raises is None else [f"raises={_type_names(self.raises)}"]
        parts += [] if self.match is None else [f"match={self.match.pattern!r}"]
        return ", ".join(parts) or "any failure"


EXPECTATION_KEY = pytest.StashKey[Expectation]()


def _type_names(raises: type[BaseException] | tuple[type[BaseException], ...]) -> str:
    types = raises if isinstance(raises, tuple) else (raises,)
    return " | ".join(t.__name__ for t in types)


def _marks_naming(item: pytest.Item, marker: str, allowed: frozenset[str], wrapper: Wrapper) -> list[pytest.Mark]:
    """The item's ``marker`` marks that name ``wrapper``; any malformed mark is a usage error."""
    known = available_wrappers()
    naming = []
    for mark in item.iter_markers(marker):
        unknown = [name for name in mark.args if name not in known]
        if unknown or not mark.args:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{marker} names unknown wrapper(s) {unknown or '(none)'}; "
                f"valid names: {', '.join(known)}"
            )
        extra = sorted(set(mark.kwargs) - allowed)
        if extra:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{marker} got unknown keyword(s) {', '.join(extra)}; "
                f"it takes {', '.join(sorted(allowed))}"
            )
        if not mark.kwargs.get("reason"):
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{marker} needs reason=... saying why")
        if wrapper.name in mark.args:
            naming.append(mark)
    return naming


def _expectation(item: pytest.Item, mark: pytest.Mark, wrapper: Wrapper) -> Expectation:
    raises = mark.kwargs.get("raises")
    types = raises if isinstance(raises, tuple) else (raises,)
    if raises is not None and not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{XFAIL} raises= must be an exception type or a tuple")
    match = mark.kwargs.get("match")
    try:
        pattern = None if match is None else re.compile(match)
    except (re.error, TypeError) as exc:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{XFAIL} match={match!r} is not a regex: {exc}") from exc
    return Expectation(wrapper.name, str(mark.kwargs["reason"]), raises, pattern)


def apply(item: pytest.Item, wrapper: Wrapper) -> None:
    """Give ``item`` its skip, or its strict expected failure, under ``wrapper`` (from our marks or PyTorch's)."""
    for mark in _marks_naming(item, SKIP, SKIP_KEYWORDS, wrapper)[:1]:
        item.add_marker(pytest.mark.skip(reason=f"[{wrapper.name}] {mark.kwargs['reason']}"))
    xfails = _marks_naming(item, XFAIL, XFAIL_KEYWORDS, wrapper)
    if xfails:
        expectation = _expectation(item, xfails[0], wrapper)
        item.stash[EXPECTATION_KEY] = expectation
        reason = f"[{wrapper.name}] {expectation.reason}"
        item.add_marker(pytest.mark.xfail(reason=reason, strict=True, raises=ExpectedFailure))
        return
    attr = wrapper.pytorch_xfail_attr
    function = getattr(item, "obj", None)
    if attr and function is not None and getattr(function, attr, False):
        item.add_marker(pytest.mark.xfail(reason=f"[{wrapper.name}] PyTorch-style {attr} attribute", strict=True))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Turn a failure its mark accepts into :class:`ExpectedFailure`; leave any other failure as it is."""
    expectation = item.stash.get(EXPECTATION_KEY, None)
    if expectation is None:
        return (yield)
    try:
        return (yield)
    except (Exception, pytest.fail.Exception) as exc:
        if expectation.accepts(exc):
            raise ExpectedFailure(f"[{expectation.wrapper}] expected: {expectation.reason}") from exc
        exc.add_note(
            f"[{expectation.wrapper}] this failure is not the one @pytest.mark.{XFAIL} expects "
            f"({expectation.describe()}), so it fails the test"
        )
        raise
