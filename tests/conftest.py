"""The shared conftest: fail early and clearly when the harness plugin is not installed.

The wrapper itself is installed by the harness's pytest plugin (pytest11 entry point),
in ``pytest_configure``, before any test module here is imported.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("export_harness"):
        raise pytest.UsageError(
            "the torch-export-harness plugin is not loaded; install the package (`pip install -e .`) "
            "or run through nox (`nox -s tests`)"
        )
