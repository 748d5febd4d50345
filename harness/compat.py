"""PyTorch-compat mode (``--pytorch-compat``): behave like PyTorch's generated per-variant test files."""

from __future__ import annotations

import unittest
from collections.abc import Generator

import pytest

from harness import patching


class PyTorchCompat:
    """Behave like PyTorch's generated per-variant wrapper files (``--pytorch-compat``).

    Those files patch only the ``export`` name bound in the test module, so a qualified
    ``torch.export.export(...)`` call is an escape hatch, and they rename every test with
    a variant suffix that tests read from ``self._testMethodName``. pytest's own test ids
    stay unchanged so results and durations line up across wrappers.
    """

    def __init__(self, patch: patching.ExportPatch) -> None:
        self.patch = patch

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        seen: set[int] = set()
        for item in items:
            module = getattr(item, "module", None)
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                self.patch.bind_into(module)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        testcase = getattr(item, "instance", None)
        suffix = self.patch.wrapper.pytorch_suffix
        if not isinstance(testcase, unittest.TestCase) or not suffix:
            yield
            return
        name = testcase._testMethodName
        variant_name = name + suffix
        # unittest looks the method up by _testMethodName; the alias keeps skips and
        # expectedFailure working, since they are attributes of the same function.
        setattr(testcase, variant_name, getattr(testcase, name))
        testcase._testMethodName = variant_name
        try:
            yield
        finally:
            testcase._testMethodName = name
            delattr(testcase, variant_name)
