"""Matrix mode: every collected test once per wrapper, in one pytest process.

``--export-wrapper all`` (or ``a,b,c``) selects it. Each test function gets one more
parametrization, appended last, whose id is the wrapper's name, so ``test_x`` becomes
``test_x[serdes_strict]`` and ``test_op[add-sample0]`` becomes ``test_op[add-sample0-serdes_strict]``.
One switchable patch is installed for the whole run, and the wrapper of each item is
made current from its setup to its teardown. Expected failures are decided per item.

unittest ``TestCase`` methods cannot be parametrized by pytest, so matrix mode refuses
them with a usage error; run such suites one wrapper at a time.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import pytest

from harness import patching
from harness.errors import UnknownWrapperError
from harness.registry import available_wrappers
from harness.selection import Selection
from harness.wrappers import Wrapper

ALL = "all"
"""The selection value that means every registered wrapper."""

PARAM = "export_wrapper_matrix"
"""The name of the parametrization matrix mode adds to every test (its value is a wrapper name)."""

MATRIX_NAME = "matrix"
"""How a matrix run names itself where a single run would give its wrapper (results file name)."""


def is_matrix(value: str) -> bool:
    """Whether a selection value asks for matrix mode: ``all`` or a comma-separated list."""
    return value.strip() == ALL or "," in value


def resolve_wrappers(selection: Selection) -> tuple[Wrapper, ...]:
    """The wrappers a selection names, in registry order for ``all`` and in the given order for a list.

    A single name gives one wrapper. Unknown names raise the registry's error listing the valid names.
    """
    known = available_wrappers()
    if not is_matrix(selection.name):
        if selection.name not in known:
            raise UnknownWrapperError(selection.name, selection.source, known)
        return (known[selection.name],)
    if selection.name.strip() == ALL:
        return tuple(known.values())
    names = list(dict.fromkeys(part.strip() for part in selection.name.split(",") if part.strip()))
    for name in names:
        if name not in known:
            raise UnknownWrapperError(name, selection.source, known)
    if not names:
        raise UnknownWrapperError(selection.name, selection.source, known)
    return tuple(known[name] for name in names)


def split_nodeid(nodeid: str, wrappers: Sequence[str]) -> tuple[str, str | None]:
    """``(test id without the wrapper, wrapper)`` for a matrix node id; ``(nodeid, None)`` if it has none.

    ``a.py::test_x[serdes_strict]`` gives ``("a.py::test_x", "serdes_strict")`` and
    ``a.py::test_op[add-sample0-cpp_serdes]`` gives ``("a.py::test_op[add-sample0]", "cpp_serdes")``.
    Longer names are tried first so that ``non_strict`` never matches as ``strict``.
    """
    if not nodeid.endswith("]"):
        return nodeid, None
    for name in sorted(wrappers, key=len, reverse=True):
        if nodeid.endswith(f"[{name}]"):
            return nodeid[: -len(name) - 2], name
        if nodeid.endswith(f"-{name}]"):
            return nodeid[: -len(name) - 2] + "]", name
    return nodeid, None


def item_wrapper(item: pytest.Item) -> str | None:
    """The wrapper name matrix mode gave ``item``, or ``None`` for an item it did not parametrize."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    name = callspec.params.get(PARAM)
    return name if isinstance(name, str) else None


class MatrixRun:
    """Hooks of matrix mode: one parametrization per wrapper, and the patch switched per item."""

    def __init__(self, patch: patching.ExportPatch, wrappers: Sequence[Wrapper]) -> None:
        self.patch = patch
        self.wrappers = {w.name: w for w in wrappers}

    def wrapper_of(self, item: pytest.Item) -> Wrapper:
        name = item_wrapper(item)
        if name is None:
            raise pytest.UsageError(f"{item.nodeid}: not parametrized by matrix mode")
        return self.wrappers[name]

    @pytest.hookimpl(trylast=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        # Appended last (trylast), so the wrapper's id ends the test id.
        metafunc.fixturenames.append(PARAM)
        names = list(self.wrappers)
        metafunc.parametrize(PARAM, names, ids=names)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        unsupported = [item.nodeid for item in items if item_wrapper(item) is None]
        if unsupported:
            shown = ", ".join(unsupported[:5]) + (f" and {len(unsupported) - 5} more" if len(unsupported) > 5 else "")
            raise pytest.UsageError(
                f"matrix mode (--export-wrapper {ALL} or a list) runs plain pytest test functions once per "
                f"wrapper, but {len(unsupported)} collected item(s) cannot be parametrized (unittest.TestCase "
                f"methods or non-Python items): {shown}. Run them with one wrapper at a time "
                "(--export-wrapper NAME), or deselect them."
            )

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, None]:
        # Setup, call and teardown (and the reports made in between) all see the item's wrapper.
        self.patch.switch(self.wrapper_of(item))
        yield
