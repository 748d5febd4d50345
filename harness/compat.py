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
        wrapper = self.patch.wrapper
        suffix = wrapper.pytorch_suffix
        if not isinstance(testcase, unittest.TestCase) or not suffix:
            yield
            return
        name, defining = testcase._testMethodName, type(testcase)
        variant_name = name + suffix
        # unittest looks the method up by _testMethodName; the alias keeps skips and
        # expectedFailure working, since they are attributes of the same function.
        setattr(testcase, variant_name, getattr(testcase, name))
        testcase._testMethodName = variant_name
        # PyTorch runs each test in a generated subclass (SerDesExportTestExport), so a test may
        # compare self.__class__ with its defining class; the node id stays the defining class's.
        testcase.__class__ = variant_class(defining, wrapper.pytorch_class_prefix or "", suffix)
        try:
            yield
        finally:
            testcase.__class__ = defining
            testcase._testMethodName = name
            delattr(testcase, variant_name)


_VARIANTS: dict[tuple[type[unittest.TestCase], str, str], type[unittest.TestCase]] = {}


def variant_class(defining: type[unittest.TestCase], prefix: str, suffix: str) -> type[unittest.TestCase]:
    """The subclass a PyTorch variant file would run ``defining``'s tests in, made once per class and variant."""
    key = (defining, prefix, suffix)
    if key not in _VARIANTS:
        name = f"{prefix}{defining.__name__}" if prefix else f"{defining.__name__}{suffix}"
        _VARIANTS[key] = type(name, (defining,), {"__module__": defining.__module__, "__qualname__": name})
    return _VARIANTS[key]
