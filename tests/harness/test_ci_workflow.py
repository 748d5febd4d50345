"""The GitHub Actions workflow: schema-valid, its matrix is nox's wrapper sessions x shards, its steps do what they say.

The workflow is checked by check-jsonschema against its vendored GitHub-workflow schema (a real validator),
and its shell steps are run here, with the environment GitHub would give them, instead of being read. What the
jobs install (nox by hand; the shard jobs get torch and the test tools from the noxfile, nothing more) is
checked here too. tests/harness/test_ci_report.py runs plan -> shards -> report end to end.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
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
    assert set(workflow["jobs"]) == {"plan", "export", "report"}
    for job in workflow["jobs"].values():
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
echo "export wrapper cpp_serdes: 40 programs round-tripped, 1 failed (serialize: 1)"
exit 1
"""


def test_export_job_runs_its_shard_and_uploads_the_results_file_whatever_the_outcome(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "nox").write_text(FAKE_NOX)
    (fake_bin / "nox").chmod(0o755)
    entry = {"wrapper": "cpp_serdes", "shard": 2, "shards": 4}
    job_env = {key: expand(str(value), entry) for key, value in load()["jobs"]["export"]["env"].items()}
    assert job_env["SUITE"] == "cpp_serdes-shard-2-of-4"
    env = {**job_env, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}", "NOX_ARGS": str(tmp_path / "args")}

    result = run_step(step("export", "export suite, this shard")["run"], tmp_path, env)
    assert result.returncode == 1, "a failing shard must fail its step"
    assert (tmp_path / "args").read_text().splitlines() == ["-s", "cpp_serdes", "--", "--shard", "2/4"]

    upload = step("export", "upload results file")
    assert upload["if"] == "${{ !cancelled() }}", "a failing shard's results must reach the report"
    assert upload["with"]["name"] == "results-${{ env.SUITE }}"
    assert upload["with"]["path"].split() == ["results/*.json", "!results/baseline.json"]


def test_one_reporting_path_the_report_job() -> None:
    """No hand-made summaries: the report job merges every shard's file, and only it writes the job summary."""
    workflow = load()
    for job in workflow["jobs"].values():
        for s in job["steps"]:
            assert "GITHUB_STEP_SUMMARY" not in str(s.get("run", "")), "the report CLI writes the summary itself"
            assert "junit" not in str(s.get("run", "")) + str(s.get("with", ""))
    report = workflow["jobs"]["report"]
    assert report["needs"] == ["plan", "export"]
    assert report["if"] == "${{ !cancelled() && needs.plan.result == 'success' }}"
    downloads = {s["with"]["pattern"]: s["with"] for s in report["steps"] if "download-artifact" in s.get("uses", "")}
    uploads = [s["with"] for s in workflow["jobs"]["export"]["steps"] if "upload-artifact" in s.get("uses", "")]
    for settings in uploads:  # every shard artifact is downloaded, merged into one folder
        (pattern,) = [p for p in downloads if fnmatch.fnmatchcase(settings["name"].replace("${{ env.SUITE }}", "x"), p)]
        assert downloads[pattern]["merge-multiple"] is True
    assert downloads["results-*"]["path"] == "results"
    assert step("report", "report")["run"].strip() == "nox -s report -- --ci"
    assert step("report", "upload report")["with"]["path"] == "reports/"


# -- what the jobs install ---------------------------------------------------------------------------------------

DEV_ONLY = {"ruff", "mypy", "playwright", "check-jsonschema", "hypothesis", "nox"}
"""Tools of the harness's own checks: never in a wrapper session's (a CI shard job's) environment."""


def requirement_names(files: Sequence[str]) -> set[str]:
    names = set()
    for name in files:
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                names.add(re.split(r"[=<>!~\[; ]", line)[0].lower())
    return names


def test_jobs_install_nox_by_hand_and_shards_get_only_torch_and_the_test_tools() -> None:
    import noxfile

    for job in load()["jobs"].values():
        installs = [s["run"] for s in job["steps"] if "pip install" in str(s.get("run", ""))]
        assert installs == ["python -m pip install -r requirements/nox.txt"]
    base = requirement_names(noxfile.REQUIREMENTS)
    assert {"torch", "pytest", "pytest-xdist", "pytest-timeout", "pytest-split", "expecttest", "numpy"} <= base
    assert not base & DEV_ONLY
    assert requirement_names(noxfile.DEV_REQUIREMENTS) >= DEV_ONLY


class RecordingSession:
    """Enough of nox.Session for shared_python: commands are recorded, a venv is a file standing for python."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def run(self, *args: str, **kwargs: Any) -> None:
        self.commands.append(list(args))
        if args[1:3] == ("-m", "venv"):
            python = Path(args[3]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            python.touch()

    def log(self, message: str) -> None:
        pass


def installed(command: list[str]) -> list[str]:
    """The requirements files (by name) and the package a pip command installs."""
    return [Path(a).name if a.endswith(".txt") else a for a in command if a.endswith(".txt") or a == "-e"]


def test_shared_environment_is_built_lean_and_topped_up_for_the_dev_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import noxfile

    project = tmp_path / "project"  # a copy of what the environment is made from, to change pins in
    shutil.copytree(ROOT / "requirements", project / "requirements")
    shutil.copy(ROOT / "pyproject.toml", project)
    monkeypatch.setattr(noxfile, "ROOT", project)
    monkeypatch.setattr(noxfile, "SHARED_ENV", project / ".nox" / "shared")
    session = RecordingSession()
    python = noxfile.shared_python(session)  # type: ignore[arg-type]
    venv, pip = session.commands
    assert venv[1:3] == ["-m", "venv"] and pip[0] == python
    assert installed(pip) == ["torch.txt", "test.txt", "-e"]

    session.commands.clear()
    assert noxfile.shared_python(session) == python  # type: ignore[arg-type]
    assert session.commands == [], "an up-to-date environment is not touched"
    noxfile.shared_python(session, dev=True)  # type: ignore[arg-type]
    (top_up,) = session.commands
    assert installed(top_up) == ["torch.txt", "test.txt", "dev.txt", "lint.txt", "nox.txt"], "torch is not reinstalled"
    session.commands.clear()
    noxfile.shared_python(session, dev=True)  # type: ignore[arg-type]
    noxfile.shared_python(session)  # type: ignore[arg-type]
    assert session.commands == []

    with (project / "requirements" / "dev.txt").open("a") as f:
        f.write("# a dev pin changed\n")
    noxfile.shared_python(session)  # type: ignore[arg-type]
    assert session.commands == [], "a dev pin does not concern the wrapper sessions"
    noxfile.shared_python(session, dev=True)  # type: ignore[arg-type]
    (top_up,) = session.commands
    assert installed(top_up) == ["torch.txt", "test.txt", "dev.txt", "lint.txt", "nox.txt"]

    session.commands.clear()
    with (project / "requirements" / "test.txt").open("a") as f:
        f.write("# a test pin changed\n")
    noxfile.shared_python(session)  # type: ignore[arg-type]
    (refresh,) = session.commands
    assert installed(refresh) == ["torch.txt", "test.txt", "-e"]
    session.commands.clear()
    noxfile.shared_python(session, dev=True)  # type: ignore[arg-type]
    (top_up,) = session.commands  # the dev layer's stamp covers the base files: a changed pin refreshes it too
    assert installed(top_up) == ["torch.txt", "test.txt", "dev.txt", "lint.txt", "nox.txt"]


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
