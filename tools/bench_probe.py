"""A pytest plugin for ``tools/bench.py``: write the wall-clock time the first test starts to $BENCH_FIRST_TEST.

Loaded with ``-p tools.bench_probe``; under xdist the controller and every worker load it and the
first process to start a test wins (the file is created exclusively).
"""

from __future__ import annotations

import os
import time

ENV_VAR = "BENCH_FIRST_TEST"


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    path = os.environ.get(ENV_VAR)
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as file:
        file.write(f"{time.time()}\n")
