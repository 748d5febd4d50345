"""Golden artifacts: a golden test's first exported program, stored, and checked against every later export.

Three modules, arrows one way:

- :mod:`harness.golden.plugin`: the pytest side (options, and the hooks that catch a golden test's
  program and store or check it); knows pytest;
- :mod:`harness.golden.artifacts`: the torch side (snapshot, write, check); knows torch, not pytest;
- :mod:`harness.golden.matrix`: the torch-version table from ``--golden-report`` files
  (``python -m harness.golden.matrix``); standard library only.

This module holds what they, the noxfile and the tools share, and imports neither pytest nor torch.
"""

from __future__ import annotations

MARKER = "golden"
"""Tests carrying this mark have their first program stored (``--golden-accept``) or checked."""

WRAPPER = "non_strict"
"""The wrapper golden artifacts are taken and checked under: the program as torch exports it."""

DEFAULT_DIR = "artifacts"
"""Where artifacts live, relative to the rootdir, unless ``--golden-dir`` says otherwise."""

PLUGIN_NAME = "export-harness-golden"
"""The name the golden hooks are registered under: ``-p no:export-harness-golden`` runs golden tests unchecked."""

ASPECTS = ("load", "outputs", "graph", "signature")
"""What a check judges, in the order a failure message, a report and the torch-version table list them."""

ACCEPT_HINT = "nox -s artifacts -- --accept"
"""How to (re)create the stored artifacts; quoted by every message about a missing or stale one."""
