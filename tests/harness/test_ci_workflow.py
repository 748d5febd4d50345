"""The GitHub Actions workflow: schema-valid, its matrix is nox's wrapper sessions x shards, its steps do what they say.

The workflow is checked by check-jsonschema against its vendored GitHub-workflow schema (a real validator),
and its shell steps are run here, with the environment GitHub would give them, instead of being read.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from harness.wrappers import BUILTIN_WRAPPERS
from tools import ci_matrix

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "export-matrix.yml"
BIN = Path(sys.executable).parent  # the shared environment: python, nox, check-jsonschema


def load(path: Path = WORKFLOW) -> Any:
    return YAML(typ="safe").load(path.read_text())


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def step(job: str, name: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = load()["jobs"][job]["steps"]
    return next(s for s in steps if s.get("name") == name)


def run_step(
    script: str, tmp_path: Path, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a `shell: bash` step the way GitHub does (bash -eo pipefail), in ``cwd`` (default: tmp_path)."""
    path = tmp_path / "step.sh"
    path.write_text(script)
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
        cwd=cwd or tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def nox_wrapper_sessions() -> list[str]:
    listing = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json", "-t", "wrappers"], cwd=ROOT, capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    return [entry["session"] for entry in json.loads(listing.stdout)]


def test_workflow_is_valid_against_the_github_workflow_schema() -> None:
    result = validate(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_a_broken_workflow(tmp_path: Path) -> None:
    """A negative control: the same file without the export job's runs-on must fail validation."""
    yaml = YAML()
    document = yaml.load(WORKFLOW.read_text())
    del document["jobs"]["export"]["runs-on"]
    broken = tmp_path / "broken.yml"
    with broken.open("w") as f:
        yaml.dump(document, f)
    result = validate(broken)
    assert result.returncode != 0
    assert "runs-on" in result.stdout + result.stderr


def test_matrix_comes_from_the_plan_job_and_pip_downloads_are_cached() -> None:
    workflow = load()
    plan, export = workflow["jobs"]["plan"], workflow["jobs"]["export"]
    assert plan["outputs"]["matrix"] == "${{ steps.matrix.outputs.matrix }}"
    assert export["needs"] == "plan"
    assert export["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert export["strategy"]["fail-fast"] is False
    for job in (plan, export):
        setup = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python@"))
        assert setup["with"]["cache"] == "pip"
        assert setup["with"]["cache-dependency-path"] == "requirements/*.txt"


def test_plan_step_emits_nox_wrapper_sessions_times_shards(tmp_path: Path) -> None:
    output = tmp_path / "github_output"
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "SHARDS": "3",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(output),
    }
    result = run_step(step("plan", "matrix")["run"], tmp_path, env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in output.read_text().splitlines() if x.startswith("matrix=")]
    matrix = json.loads(line.removeprefix("matrix="))
    sessions = nox_wrapper_sessions()
    assert sessions == [w.name for w in BUILTIN_WRAPPERS]
    assert matrix == {"include": [{"wrapper": s, "shard": i, "shards": 3} for s in sessions for i in (1, 2, 3)]}


def expand(value: str, entry: dict[str, Any]) -> str:
    """Evaluate the ``${{ matrix.X }}`` expressions of a job's env for one matrix entry."""
    expanded = re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: str(entry[m[1]]), value)
    assert "${{" not in expanded, f"unexpected expression in {value!r}"
    return expanded


FAKE_NOX = """#!/bin/sh
printf '%s\\n' "$@" > "$NOX_ARGS"
echo "============================= test session starts =============================="
echo "export shard: 2/4 (command-line option --shard), least_duration over durations/cpp_serdes.json"
echo "FAILED tests/export/test_x.py::test_a - AssertionError"
echo "export wrapper cpp_serdes: 40 programs round-tripped, 1 failed (serialize: 1)"
echo "========================= 1 failed, 41 passed in 12.34s ========================="
exit 1
"""


def test_export_job_runs_the_shard_with_a_named_junit_suite_and_writes_a_summary(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "nox").write_text(FAKE_NOX)
    (fake_bin / "nox").chmod(0o755)
    entry = {"wrapper": "cpp_serdes", "shard": 2, "shards": 4}
    job_env = {key: expand(str(value), entry) for key, value in load()["jobs"]["export"]["env"].items()}
    assert job_env["SUITE"] == "cpp_serdes-shard-2-of-4"
    env = {**job_env, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}", "NOX_ARGS": str(tmp_path / "args")}

    result = run_step(step("export", "export suite, this shard")["run"], tmp_path, env)
    assert result.returncode == 1, "a failing shard must fail its step (pipefail through tee)"
    assert (tmp_path / "args").read_text().splitlines() == [
        "-s",
        "cpp_serdes",
        "--",
        "--shard",
        "2/4",
        "--junitxml=junit/cpp_serdes-shard-2-of-4.xml",
        "-o",
        "junit_suite_name=cpp_serdes-shard-2-of-4",
    ]

    summary_step = step("export", "job summary")
    assert summary_step["if"] == "always()"
    summary = tmp_path / "step_summary.md"
    result = run_step(summary_step["run"], tmp_path, {**env, "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.stderr
    text = summary.read_text()
    assert text.startswith("### `cpp_serdes` shard 2 of 4\n")
    assert "export wrapper cpp_serdes: 40 programs round-tripped, 1 failed (serialize: 1)" in text
    assert "1 failed, 41 passed in 12.34s" in text
    assert "FAILED tests/export/test_x.py::test_a - AssertionError" in text


# -- tools/ci_matrix.py -----------------------------------------------------------------------------------------


def test_ci_matrix_keeps_only_wrapper_sessions() -> None:
    listing = [
        {"session": "strict", "tags": ["wrappers", "strict"]},
        {"session": "lint", "tags": []},
        {"session": "cpp_serdes", "tags": ["wrappers", "serdes"]},
    ]
    assert ci_matrix.wrapper_sessions(listing) == ["strict", "cpp_serdes"]
    assert ci_matrix.build_matrix(["strict"], 2) == {
        "include": [{"wrapper": "strict", "shard": 1, "shards": 2}, {"wrapper": "strict", "shard": 2, "shards": 2}]
    }


@pytest.mark.parametrize(
    ("listing", "shards", "message"),
    [
        ([{"session": "lint", "tags": []}], 2, "no session tagged 'wrappers'"),
        ([{"session": "strict", "tags": ["wrappers"]}], 0, "--shards is 0"),
        ([{"session": f"w{i}", "tags": ["wrappers"]} for i in range(65)], 4, "over GitHub's 256"),
    ],
)
def test_ci_matrix_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], listing: list[dict[str, Any]], shards: int, message: str
) -> None:
    path = tmp_path / "listing.json"
    path.write_text(json.dumps(listing))
    assert ci_matrix.main(["--shards", str(shards), str(path)]) == 2
    assert message in capsys.readouterr().err
