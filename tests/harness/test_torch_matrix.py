"""The torch-version table (harness/golden/matrix.py), from golden reports written by hand, and its CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.golden import ASPECTS, matrix

ROOT = Path(__file__).resolve().parents[2]

GRAPH_DIFF = "\n".join(
    [
        "--- a.json (graph, stored)",
        "+++ graph, fresh export",
        "@@ -1 +1 @@",
        "-  mul = aten.mul(x, 2)",
        "+  add = aten.add(x, x)",
    ]
)


def report(tests: dict[str, dict[str, object]], path: Path) -> Path:
    path.write_text(json.dumps({"torch_version": "2.14.1", "accept": False, "tests": tests}))
    return path


def verdict(**failures: str) -> dict[str, object]:
    return {"saved_by": "2.13.0", **{aspect: failures.get(aspect) for aspect in ASPECTS}}


def test_cell_counts_each_aspect_and_groups_causes(tmp_path: Path) -> None:
    load_error = f"{tmp_path}/x.pt2: torch.export.load failed: KeyError: 'schema'"
    tests: dict[str, dict[str, object]] = {
        "t.py::a": verdict(),
        "t.py::b": verdict(graph=GRAPH_DIFF),
        "t.py::c": verdict(load=load_error, outputs="not run: the program did not load"),
        "t.py::d": verdict(load=load_error.replace("x.pt2", "y.pt2"), outputs="not run: the program did not load"),
        "t.py::e": {"error": "a golden test must export exactly one program; this one exported 2"},
    }
    counts = matrix.cell(matrix.read_report(report(tests, tmp_path / "r.json")))
    assert counts["tests"] == 5
    assert counts["held"] == {"load": 2, "outputs": 2, "graph": 3, "signature": 4}
    assert counts["causes"]["load"]["<file>: torch.export.load failed: KeyError: 'schema'"] == 2
    assert counts["causes"]["graph"] == {
        "-  mul = aten.mul(x, 2) => +  add = aten.add(x, x)": 1,
        "a golden test must export exactly one program; this one exported 2": 1,
    }
    assert set(counts["failures"]) == {"t.py::b", "t.py::c", "t.py::d", "t.py::e"}
    assert matrix.cell_text(counts) == "2/5 load, 2/5 outputs, 3/5 graph, 4/5 signature"


def test_main_prints_the_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = report({"t.py::a": verdict()}, tmp_path / "good.json")
    bad = report({"t.py::a": verdict(graph=GRAPH_DIFF)}, tmp_path / "bad.json")
    out = tmp_path / "reports" / "matrix.json"
    cells = ["--cell", "2.13.0", "2.13.0", str(good), "--cell", "2.13.0", "2.14.1", str(bad)]
    assert matrix.main(["--out", str(out), *cells]) == 0
    printed = capsys.readouterr().out
    assert "| 2.13.0 | 1/1 load, 1/1 outputs, 1/1 graph, 1/1 signature | 1/1 load, 1/1 outputs, 0/1 graph," in printed
    assert "2.13.0 -> 2.14.1, graph failed:" in printed
    document = json.loads(out.read_text())
    assert document["versions"] == ["2.13.0", "2.14.1"]
    assert [(c["saved_by"], c["loaded_by"]) for c in document["cells"]] == [("2.13.0", "2.13.0"), ("2.13.0", "2.14.1")]


@pytest.mark.parametrize("content", ["", "{", '{"tests": {}, "accept": true}', "[]"])
def test_a_bad_report_is_named_and_exits_2(tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "golden.json"
    path.write_text(content)
    assert matrix.main(["--out", str(tmp_path / "out.json"), "--cell", "a", "b", str(path)]) == 2
    assert str(path) in capsys.readouterr().err


def test_python_m_harness_golden_matrix_runs_the_table(tmp_path: Path) -> None:
    """The CLI `nox -s torch_matrix` calls: the module runs as a program, with the same flags as main()."""
    good = report({"t.py::a": verdict()}, tmp_path / "good.json")
    out = tmp_path / "torch_matrix.json"
    cells = ["--cell", "2.13.0", "2.13.0", str(good)]
    done = subprocess.run(
        [sys.executable, "-m", "harness.golden.matrix", "--out", str(out), *cells],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| 2.13.0 | 1/1 load, 1/1 outputs, 1/1 graph, 1/1 signature |" in done.stdout
    assert json.loads(out.read_text())["versions"] == ["2.13.0"]


def test_the_noxfile_and_the_matrix_import_neither_pytest_nor_torch() -> None:
    """nox's Python may have neither: the noxfile and the table take only harness.golden's shared constants."""
    blocked = "import sys; sys.modules['pytest'] = sys.modules['torch'] = None  # importing either now fails"
    done = subprocess.run(
        [sys.executable, "-c", f"{blocked}\nimport noxfile, harness.golden.matrix"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
