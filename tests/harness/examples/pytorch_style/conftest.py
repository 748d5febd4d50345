"""Record each test's outcome as JSON, keyed the same way for compat runs and variant-file runs."""

import json
import os

from harness.wrappers import BUILTIN_WRAPPERS

SUFFIXES = sorted((w.pytorch_suffix for w in BUILTIN_WRAPPERS), key=len, reverse=True)
_outcomes = {}


def _key(nodeid):
    """('_serdes_strict', 'TestStyle::test_basic') from either kind of node id."""
    _, cls, method = nodeid.split("::")
    for suffix in SUFFIXES:
        if cls.endswith(suffix) and method.endswith(suffix):
            return suffix, f"{cls[: -len(suffix)]}::{method[: -len(suffix)]}"
    return "", f"{cls}::{method}"


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        outcome = "xfailed" if report.skipped and hasattr(report, "wasxfail") else report.outcome
        if report.when == "teardown" and report.failed:
            outcome = "error"
        suffix, test = _key(report.nodeid)
        _outcomes.setdefault(suffix, {})[test] = outcome


def pytest_sessionfinish(session):
    target = os.environ.get("OUTCOMES_FILE")
    if target and not hasattr(session.config, "workerinput"):
        with open(target, "w") as f:
            json.dump(_outcomes, f, indent=1, sort_keys=True)
