"""The OpInfo case list, stored per torch version, so that collecting ``tests/ops`` never imports op_db.

``tests/ops/case_lists/torch-<torch.__version__>.json`` holds every case of the sweep (its id, op, dtype,
sample position, how its second sample is made) and the op ids each exclusion rule left out. It is made by
``tests/ops/sweep.py`` (the only module here that imports ``torch.testing._internal``'s op database) and
stamped with that module's SHA-256: a list that is missing, unreadable, for another torch, or made by another
version of ``sweep.py`` is made anew at collection (about 40 s on 2 cores) and written in place, atomically,
so concurrent xdist workers agree. The list for the pinned torch is committed; remake it on purpose with
``python -m tests.ops.catalog``.

This module imports neither op_db nor ``tests/ops/sweep.py`` unless it has to remake the list.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
CASE_LIST_DIR = HERE / "case_lists"
GENERATOR = HERE / "sweep.py"
FORMAT = "torch-export-harness-opinfo-cases"
VERSION = 1

GRAD_SUFFIX = "-grad"
"""Id suffix of the cases whose sample tensors require grad."""


@dataclass(frozen=True)
class CaseSpec:
    """One case as the list stores it: enough to remake the call and both samples in any process.

    ``second`` says how the second sample is made (``"opinfo"``: OpInfo's sample function under
    ``second_seed``; ``"range"`` or ``"pool"``: the example's tensors redrawn under ``second_seed``, see
    ``sweep.redraw``), or is ``None`` and ``no_second`` says why there is none.
    """

    id: str
    op: str
    dtype: str
    sample: int
    grad: bool
    layout: str
    second: str | None
    second_seed: int | None
    no_second: str | None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class CaseList:
    torch_version: str
    generator: str
    cases: tuple[CaseSpec, ...]
    excluded: dict[str, list[str]]


def path_for(torch_version: str) -> Path:
    return CASE_LIST_DIR / f"torch-{torch_version}.json"


def generator_hash() -> str:
    """SHA-256 of ``sweep.py``: the rules that made the list."""
    return hashlib.sha256(GENERATOR.read_bytes()).hexdigest()


def render(cases: CaseList) -> str:
    """The file's text: one case per line, so a diff shows which cases changed."""
    head = {
        "format": FORMAT,
        "version": VERSION,
        "torch": cases.torch_version,
        "generator_sha256": cases.generator,
        "excluded": cases.excluded,
    }
    lines = [json.dumps(head, indent=1, sort_keys=True)[:-2] + ',\n "cases": [']
    lines += [" " + json.dumps(case.to_json()) + "," for case in cases.cases]
    lines[-1] = lines[-1].rstrip(",")
    lines.append(" ]\n}")
    return "\n".join(lines) + "\n"


def parse(text: str) -> CaseList:
    data = json.loads(text)
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ValueError("not an OpInfo case list of this version")
    cases = tuple(CaseSpec(**entry) for entry in data["cases"])
    return CaseList(data["torch"], data["generator_sha256"], cases, data["excluded"])


def read(path: Path) -> CaseList | None:
    try:
        return parse(path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _why_stale(found: CaseList | None, path: Path) -> str | None:
    if found is None:
        return f"{path.name} is missing or unreadable"
    if found.torch_version != torch.__version__:
        return f"{path.name} was made for torch {found.torch_version}"
    if found.generator != generator_hash():
        return f"{path.name} was made by another version of {GENERATOR.name}"
    return None


def make(torch_version: str | None = None) -> CaseList:
    """Build the list from op_db (imports ``tests/ops/sweep.py``)."""
    from tests.ops import sweep

    built = sweep.build()
    return CaseList(torch_version or torch.__version__, generator_hash(), tuple(built.cases), built.excluded)


def write(path: Path, cases: CaseList) -> None:
    """Write atomically: a concurrent reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as file:
        file.write(render(cases))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load() -> CaseList:
    """The list for this torch, remade (and written) first if it is missing or stale."""
    path = path_for(torch.__version__)
    found = read(path)
    why = _why_stale(found, path)
    if why is None:
        assert found is not None
        return found
    start = time.monotonic()
    print(f"tests/ops: {why}; remaking the OpInfo case list from op_db", file=sys.stderr, flush=True)
    made = make()
    write(path, made)
    print(f"tests/ops: wrote {path} ({len(made.cases)} cases, {time.monotonic() - start:.0f} s)", file=sys.stderr)
    return made


def main() -> int:
    """``python -m tests.ops.catalog``: remake the list for this torch and say what changed."""
    path = path_for(torch.__version__)
    before = read(path)
    made = make()
    write(path, made)
    old = {case.id for case in before.cases} if before else set()
    new = {case.id for case in made.cases}
    print(f"wrote {path.relative_to(HERE.parents[1])}: {len(new)} cases, {len(new - old)} new, {len(old - new)} gone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
