"""Matrix mode's hooks: every collected test once per wrapper, in one pytest process.

``--export-wrapper all`` (or ``a,b,c``) selects it. Each test function gets one more
parametrization, appended last, whose id is the wrapper's name, so ``test_x`` becomes
``test_x[serdes_strict]`` and ``test_op[add-sample0]`` becomes ``test_op[add-sample0-serdes_strict]``.
One switchable patch is installed for the whole run, and the wrapper of each item is
made current from its setup to its teardown. Expected failures are decided per item.

unittest ``TestCase`` methods cannot be parametrized by pytest, so matrix mode refuses
them with a usage error; run such suites one wrapper at a time. Parsing the selection value and
splitting a matrix test id back into (test, wrapper) belong to the registry (``harness/registry.py``).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import pytest

from harness import patching
from harness.registry import ALL
from harness.wrappers import Wrapper

PARAM = "export_wrapper_matrix"
"""The name of the parametrization matrix mode adds to every test (its value is a wrapper name)."""


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
