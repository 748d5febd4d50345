"""``python -m harness.report``: see :mod:`harness.report.cli`."""

from __future__ import annotations

from harness.report.cli import main

raise SystemExit(main())
