"""A pytest plugin for ``tools/bench.py``: write the wall-clock time of the first test result to $BENCH_FIRST_TEST.

A result is a test's last report (its teardown), when the terminal shows it. Loaded with
``-p tools.bench_probe``; under xdist the controller and every worker load it and the first process to see a
result wins (the file is created exclusively).
"""

from __future__ import annotations

import os
import time

import pytest

ENV_VAR = "BENCH_FIRST_TEST"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = os.environ.get(ENV_VAR)
    if not path or report.when != "teardown":
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as file:
        file.write(f"{time.time()}\n")
