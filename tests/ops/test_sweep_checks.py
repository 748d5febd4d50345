"""Checks of the OpInfo sweep itself: it catches the programs it claims to, and its collection stays cheap.

These tests export nothing through the wrapper: each hands ``check_case`` a rigged program (one that replays
the example's outputs, or gets gradients wrong) and expects the failure the sweep promises. They run the same
under every wrapper.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.ops import catalog, test_opinfo
from tests.ops.catalog import CaseList, CaseSpec

ROOT = Path(__file__).resolve().parents[2]

RIGGED = (
    "add-sample0",
    "add-sample0-grad",
    "nn.functional.conv2d-sample0-grad",
    "argwhere-sample0",
    "isnan-sample0",
    "gcd-int64-sample0",
    "view_as_real-complex64-sample0-grad",
    "sort-sample0-grad",
)
"""One case per kind of second sample (OpInfo's under another seed, range, pool), dtype family and output kind."""


def _spec(case_id: str) -> CaseSpec:
    return next(case for case in test_opinfo.CASES.cases if case.id == case_id)


class _Rigged:
    """Stands in for an ExportedProgram whose ``module()`` is ``program``."""

    def __init__(self, program: torch.nn.Module) -> None:
        self.program = program

    def module(self) -> torch.nn.Module:
        return self.program


def _rig(monkeypatch: pytest.MonkeyPatch, make_program: Callable[[torch.nn.Module, tuple[Any, ...]], Any]) -> None:
    def export(mod: torch.nn.Module, args: tuple[Any, ...], *rest: Any, **options: Any) -> _Rigged:
        return _Rigged(make_program(mod, args))

    monkeypatch.setattr(test_opinfo, "export", export)


class _Replay(torch.nn.Module):
    """Ignores its inputs: returns what eager returned on the example (fresh copies, grad as eager's)."""

    def __init__(self, eager: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        inputs = tuple(t.detach().clone().requires_grad_(t.requires_grad) for t in example)
        self.outputs = eager(*inputs)

    def forward(self, *tensors: torch.Tensor) -> Any:
        return torch.utils._pytree.tree_map_only(torch.Tensor, lambda t: t.detach().clone(), self.outputs)


@pytest.mark.parametrize("case_id", RIGGED)
def test_a_program_that_replays_the_example_fails(monkeypatch: pytest.MonkeyPatch, case_id: str) -> None:
    """Right on the example only is not enough: the second sample (or, with grad, requires_grad) tells."""
    spec = _spec(case_id)
    assert spec.second is not None, f"{case_id} has no second sample: {spec.no_second}"
    _rig(monkeypatch, _Replay)
    match = "requires_grad of output" if spec.grad else "on the second sample"
    with pytest.raises(AssertionError, match=match):
        test_opinfo.check_case(spec)


class _DetachedGrad(torch.nn.Module):
    """Eager's forward values, but the gradient flows as if each output were ``0 * input`` (wrong, not absent)."""

    def __init__(self, eager: torch.nn.Module) -> None:
        super().__init__()
        self.eager = eager

    def forward(self, *tensors: torch.Tensor) -> Any:
        with torch.no_grad():
            out = self.eager(*tensors)
        anchor = sum(((t.real if t.is_complex() else t).sum() * 0 for t in tensors if t.requires_grad), torch.zeros(()))

        def attach(t: torch.Tensor) -> torch.Tensor:
            return t + anchor.to(t.real.dtype) if t.is_floating_point() or t.is_complex() else t

        return torch.utils._pytree.tree_map_only(torch.Tensor, attach, out)


@pytest.mark.parametrize("case_id", [case_id for case_id in RIGGED if case_id.endswith("-grad")])
def test_a_program_with_wrong_gradients_fails(monkeypatch: pytest.MonkeyPatch, case_id: str) -> None:
    """Forward values and requires_grad right, gradients wrong: the backward pass tells."""
    _rig(monkeypatch, lambda eager, example: _DetachedGrad(eager))
    with pytest.raises(AssertionError, match=r"gradient of input \d+ on the example inputs differs"):
        test_opinfo.check_case(_spec(case_id))


def test_every_case_without_a_second_sample_says_why() -> None:
    for case in test_opinfo.CASES.cases:
        assert (case.second is None) == bool(case.no_second), case.id
        assert (case.second is None) == (case.second_seed is None), case.id


def test_collection_does_not_import_op_db() -> None:
    """The case list is read, not made: op_db (seconds to import and walk) is loaded only where a case runs."""
    code = (
        "import sys, tests.ops.catalog as c; cases = c.load(); "
        "assert 'torch.testing._internal.common_methods_invocations' not in sys.modules; "
        "assert 'tests.ops.sweep' not in sys.modules; print(len(cases.cases))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(test_opinfo.CASES.cases)


def test_a_stale_case_list_is_remade(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Missing, for another torch, or made by another sweep.py: remade (here by a stub) and written."""
    made: list[CaseList] = []
    fresh = CaseList(torch.__version__, catalog.generator_hash(), (_spec("add-sample0"),), {"x": ["y"]})

    def make(torch_version: str | None = None) -> CaseList:
        made.append(fresh)
        return fresh

    monkeypatch.setattr(catalog, "CASE_LIST_DIR", tmp_path)
    monkeypatch.setattr(catalog, "make", make)
    path = catalog.path_for(torch.__version__)
    assert catalog.load() == fresh and len(made) == 1 and catalog.read(path) == fresh  # missing
    assert catalog.load() == fresh and len(made) == 1  # fresh: read, not made
    for stale in (
        CaseList("0.0.0", fresh.generator, fresh.cases, fresh.excluded),
        CaseList(fresh.torch_version, "0" * 64, fresh.cases, fresh.excluded),
    ):
        catalog.write(path, stale)
        assert catalog.load() == fresh and catalog.read(path) == fresh
    assert len(made) == 3
    path.write_text("{not json")
    assert catalog.load() == fresh and len(made) == 4
