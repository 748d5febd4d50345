"""One report for a sharded CI run, proved without GitHub: the workflow's own steps, run in sequence.

On a small suite (tests/export and tests/ops of a scratch checkout) this runs

(a) the plan job's ``matrix`` step, with a ``nox -l --json`` listing of two wrapper sessions, for 2 shards;
(b) each export job of that matrix: its shard step (``nox -s WRAPPER -- --shard I/N``, through a stand-in
    ``nox`` that runs the real noxfile session's pytest command with xdist off) in its own checkout, then its
    upload steps, emulated from their ``path:`` globs;
(c) the report job: its download steps (pattern + merge-multiple, emulated), then its ``report`` step with the
    real ``nox`` and the real noxfile, where torch and pytest cannot be imported, writing the job summary;
(d) one unsharded run of the same selection (``nox -s matrix`` with both wrappers) and its report,

and asserts that the merged report's results, summary, failure groups and comparison with the baseline equal
the unsharded report's, and that a regression against the baseline fails the report job.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness import results
from tests.harness.test_ci_workflow import BIN, ROOT, expand, load, step

WRAPPERS = ("non_strict", "serdes_non_strict")
SHARDS = 2
JOBS_AT_ONCE = 2
EXPORT_TESTS = "tests/export/test_tiny.py"

SUITE = '''
import pytest
import torch
from torch.export import export

from harness import ExportWrapperError


class AddOne(torch.nn.Module):
    def forward(self, x):
        return x + 1


class MaxWithIndices(torch.nn.Module):
    def forward(self, x):
        return torch.max(x, dim=0)  # a torch.return_types.max: torch 2.13's serializer has no name for it


def test_add_one():
    ep = export(AddOne(), (torch.ones(3),))
    assert torch.equal(ep.module()(torch.ones(3)), torch.full((3,), 2.0))


def test_max_with_indices():
    export(MaxWithIndices(), (torch.ones(2, 3),))


@pytest.mark.xfail_under("serdes_non_strict", reason="no serialization name", raises=ExportWrapperError)
def test_max_marked():
    export(MaxWithIndices(), (torch.ones(2, 3),))


def test_wrong_answer():
    ep = export(AddOne(), (torch.ones(3),))
    assert ep.module()(torch.ones(3)).sum().item() == 0


@pytest.mark.skip_under("serdes_non_strict", reason="tells nothing about save/load")
def test_plain_only():
    export(AddOne(), (torch.ones(1),))
'''
OPS = '''
import pytest
import torch
from torch.export import export


class Unary(torch.nn.Module):
    def __init__(self, op):
        super().__init__()
        self.op = op

    def forward(self, x):
        return self.op(x)


@pytest.mark.parametrize("op", [torch.sin, torch.neg], ids=["sin", "neg"])
def test_unary(op):
    export(Unary(op), (torch.ones(2),))
'''
TESTS_PER_WRAPPER = 7
REGRESSION = (f"{EXPORT_TESTS}::test_max_with_indices", "serdes_non_strict")

NOX_LISTING = [
    {"session": "non_strict", "tags": ["wrappers", "non_strict", "plain"]},
    {"session": "lint", "tags": []},
    {"session": "serdes_non_strict", "tags": ["wrappers", "non_strict", "serdes"]},
]
PLAN_NOX = f"""#!/bin/sh
# a stand-in for `nox -l --json -t wrappers`: two wrapper sessions and one other
[ "$*" = "-l --json -t wrappers" ] || {{ echo "unexpected: nox $*" >&2; exit 2; }}
echo '{json.dumps(NOX_LISTING)}'
"""
SESSION_NOX = f"""#!{sys.executable}
'''A stand-in for `nox -s SESSION -- POSARGS`: runs the real noxfile session's commands (python = this one, so no
environment is built), in the current directory as nox runs them in the checkout's, with xdist off.'''
import os, subprocess, sys
sys.path.insert(0, {str(ROOT)!r})
import noxfile
from nox import registry

argv = sys.argv[1:]
assert argv[:1] == ["-s"] and argv[2:3] in ([], ["--"]), argv
commands = []

class Session:
    posargs = argv[3:]
    def run(self, *args, env=None, success_codes=None, **kwargs):
        commands.append((list(args), dict(env or {{}}), list(success_codes or [0])))
    def error(self, message):
        sys.exit("nox > " + message)
    def log(self, message):
        print("nox > " + message)

noxfile.shared_python = lambda session, **kwargs: sys.executable
registry.get()[argv[1]](Session())
for args, env, codes in commands:
    print("nox > " + " ".join(args[1:]), flush=True)
    code = subprocess.run([*args, "-n", "0"], env={{**os.environ, **env}}).returncode
    if code not in codes:
        sys.exit(code)
"""
BLOCKED = "raise ImportError('the report job has no {0}: harness.report must not import it')\n"


def write_script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def clean_environ() -> dict[str, str]:
    """This process's environment without anything that would choose a wrapper, a shard or CI for the runs."""
    drop = {"EXPORT_WRAPPER", "EXPORT_SHARD", "CI", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "PYTHONPATH"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def export_checkout(path: Path, baseline: Path) -> Path:
    """What an export job checks out, for this test: the project's pytest settings, the suite, the baseline."""
    write_script(path / "tests" / "export" / "test_tiny.py", SUITE)
    write_script(path / "tests" / "ops" / "test_tiny_ops.py", OPS)
    shutil.copy(ROOT / "pyproject.toml", path / "pyproject.toml")
    (path / "results").mkdir()
    shutil.copy(baseline, path / "results" / "baseline.json")
    return path


def report_checkout(path: Path, baseline: Path) -> Path:
    """The project as the report job checks it out, with this test's baseline and no results or reports yet.

    noxfile.py is copied (it finds the project next to itself); everything else is linked.
    """
    path.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in {".git", ".nox", "results", "reports", "noxfile.py"}:
            continue
        (path / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    shutil.copy(ROOT / "noxfile.py", path / "noxfile.py")
    (path / "results").mkdir()
    shutil.copy(baseline, path / "results" / "baseline.json")
    return path


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a ``shell: bash`` step as GitHub does (``bash -eo pipefail``) with exactly ``env``."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd, env=env, capture_output=True, text=True, check=False,
    )


def upload(workspace: Path, settings: dict[str, Any]) -> dict[str, bytes]:
    """actions/upload-artifact@v4: the files the ``path:`` lines match, less the ``!`` lines, named relative to
    the least common ancestor of the include patterns' search roots (their parts before the first wildcard),
    as the action stores them."""
    lines = [line.strip() for line in str(settings["path"]).splitlines() if line.strip()]
    includes = [line for line in lines if not line.startswith("!")]
    excludes = [line[1:] for line in lines if line.startswith("!")]
    files: set[Path] = set()
    roots = []
    for pattern in includes:
        parts = Path(pattern).parts
        literal = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), None)
        if literal is None:
            path = workspace.joinpath(*parts)
            roots.append(path if path.is_dir() or pattern.endswith("/") else path.parent)
            files.update([path] if path.is_file() else (p for p in path.rglob("*") if p.is_file()))
        else:
            roots.append(workspace.joinpath(*parts[:literal]))
            files.update(p for p in workspace.glob(pattern) if p.is_file())
    kept = [
        p for p in sorted(files) if not any(fnmatch.fnmatch(p.relative_to(workspace).as_posix(), x) for x in excludes)
    ]
    root = Path(os.path.commonpath(roots))
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in kept}


def download(workspace: Path, settings: dict[str, Any], artifacts: dict[str, dict[str, bytes]]) -> list[str]:
    """actions/download-artifact@v4 with ``pattern`` and ``merge-multiple``: every match into ``path``."""
    assert settings["merge-multiple"] is True
    names = [name for name in artifacts if fnmatch.fnmatchcase(name, settings["pattern"])]
    for name in names:
        for relative, data in artifacts[name].items():
            target = workspace / settings["path"] / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return names


def essence(report: dict[str, Any]) -> dict[str, Any]:
    """What a report says about the tests: results, summary, cause groups, comparison (not files, times)."""
    comparison = {k: v for k, v in report["comparison"].items() if k != "baseline"}
    return {
        "selection": [s["key"] for s in report["selection"]["selections"]],
        "wrappers": sorted(report["wrappers"]),
        "tests": [{k: r[k] for k in ("test", "wrapper", "outcome", "stage", "cause")} for r in report["tests"]],
        "summary": report["summary"],
        "failure_groups": report["failure_groups"],
        "collection_errors": report["collection_errors"],
        "comparison": comparison,
    }


def test_sharded_ci_run_reports_like_one_unsharded_run(tmp_path: Path) -> None:
    started = time.perf_counter()
    workflow = load()
    base_env = clean_environ()

    # The baseline: two results the run holds; one of them fails in the run (a regression).
    baseline = tmp_path / "baseline.json"
    results.write(baseline, results.RunFile(
        run="matrix", wrappers=list(WRAPPERS), created=results.now(), torch="2.13.0",
        records=[
            results.Record(f"{EXPORT_TESTS}::test_add_one", "non_strict", "passed"),
            results.Record(*REGRESSION, "passed"),
        ],
    ))

    # (a) the plan job's matrix step, on a nox listing of two wrapper sessions.
    plan_bin = tmp_path / "plan-bin"
    write_script(plan_bin / "nox", PLAN_NOX)
    output = tmp_path / "github_output"
    plan = bash(step("plan", "matrix")["run"], ROOT, {
        **base_env, "PATH": f"{plan_bin}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
        "SHARDS": str(SHARDS), "RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(output),
    })
    assert plan.returncode == 0, plan.stderr
    (line,) = [x for x in output.read_text().splitlines() if x.startswith("matrix=")]
    matrix = json.loads(line.removeprefix("matrix="))
    assert matrix == {"include": [{"wrapper": w, "shard": i, "shards": SHARDS} for w in WRAPPERS for i in (1, 2)]}

    # (b) every export job: its shard step in its own checkout, then its uploads.
    export_job = workflow["jobs"]["export"]
    uploads = [s for s in export_job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert uploads and all(s["if"] == "${{ !cancelled() }}" for s in uploads), "a failing shard must still upload"
    session_bin = tmp_path / "session-bin"
    write_script(session_bin / "nox", SESSION_NOX)
    jobs = {}
    for entry in matrix["include"]:
        job_env = {key: expand(str(value), entry) for key, value in export_job["env"].items()}
        jobs[job_env["SUITE"]] = (export_checkout(tmp_path / "jobs" / job_env["SUITE"], baseline), job_env)
    unsharded = export_checkout(tmp_path / "jobs" / "unsharded", baseline)
    shard_script = step("export", "export suite, this shard")["run"]
    path = f"{session_bin}{os.pathsep}{os.environ['PATH']}"
    # Jobs run side by side, as GitHub runs them (two at a time: the machine's cores); (d)'s run is one of them.
    with ThreadPoolExecutor(max_workers=JOBS_AT_ONCE) as pool:
        unsharded_run = pool.submit(
            bash, f"nox -s matrix -- --export-wrapper {','.join(WRAPPERS)}", unsharded, {**base_env, "PATH": path}
        )
        shard_runs = {
            suite: pool.submit(bash, shard_script, workspace, {**base_env, **job_env, "PATH": path})
            for suite, (workspace, job_env) in jobs.items()
        }
    artifacts: dict[str, dict[str, bytes]] = {}
    exits = {}
    for suite, (workspace, job_env) in jobs.items():
        shard = shard_runs[suite].result()
        exits[suite] = shard.returncode
        assert shard.returncode in (0, 1), f"{suite}:\n{shard.stdout[-3000:]}{shard.stderr[-3000:]}"
        for settings in (s["with"] for s in uploads):
            name = settings["name"].replace("${{ env.SUITE }}", job_env["SUITE"])
            assert name not in artifacts, f"artifact {name} uploaded twice: upload-artifact@v4 refuses that"
            files = upload(workspace, settings)
            if files or settings.get("if-no-files-found") != "ignore":
                artifacts[name] = files
    results_artifacts = {name: files for name, files in artifacts.items() if name.startswith("results-")}
    assert len(results_artifacts) == len(matrix["include"])
    for name, files in results_artifacts.items():
        wrapper, _, shard_of = name.removeprefix("results-").partition("-shard-")
        (file_name,) = files  # the shard's results file, and not the checkout's baseline
        assert re.fullmatch(rf"{wrapper}-[0-9a-f]{{10}}-shard-{shard_of}\.json", file_name), file_name
    for wrapper in WRAPPERS:  # test_wrong_answer fails under every wrapper: one shard of each fails, as a job
        assert 1 in [exits[f"{wrapper}-shard-{i}-of-{SHARDS}"] for i in range(1, SHARDS + 1)], exits

    # (c) the report job: downloads, then its report step with the real nox and noxfile, without torch or pytest.
    report_job = workflow["jobs"]["report"]
    assert report_job["needs"] == ["plan", "export"]
    assert report_job["if"] == "${{ !cancelled() && needs.plan.result == 'success' }}"
    installs = [s["run"] for s in report_job["steps"] if "pip install" in str(s.get("run", ""))]
    assert installs == ["python -m pip install -r requirements/nox.txt"], "the report job installs nox alone"
    checkout = report_checkout(tmp_path / "report-job", baseline)
    for settings in (s["with"] for s in report_job["steps"] if str(s.get("uses", "")).startswith(
            "actions/download-artifact@")):
        download(checkout, settings, artifacts)
    assert sorted(p.name for p in (checkout / "results").iterdir()) == sorted(
        ["baseline.json", *(name for files in results_artifacts.values() for name in files)]
    )
    blocker = tmp_path / "no-torch"
    for module in ("torch", "pytest"):
        write_script(blocker / module / "__init__.py", BLOCKED.format(module))
    summary_file = tmp_path / "step_summary.md"
    reported = bash(step("report", "report")["run"], checkout, {
        **base_env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "CI": "true", "PYTHONPATH": str(blocker),
        "GITHUB_STEP_SUMMARY": str(summary_file),
    })
    assert reported.returncode == 1, "a regression against the baseline fails the report job\n" + (
        reported.stdout + reported.stderr
    )
    assert "REGRESSION tests/export/test_tiny.py::test_max_with_indices [serdes_non_strict]" in reported.stdout
    reports = checkout / "reports"
    assert summary_file.read_text() == (reports / "report.md").read_text()
    (report_upload,) = [s for s in report_job["steps"] if s.get("name") == "upload report"]
    assert report_upload["if"] == "${{ !cancelled() }}", "the report is uploaded when it finds a regression"
    uploaded = upload(checkout, report_upload["with"])
    assert {"report.html", "report.md", "report.json"} <= set(uploaded)
    merged = json.loads(uploaded["report.json"])

    # (d) one unsharded run of the same selection (run above, alongside the shards), both wrappers in one run
    # (matrix mode), and its report.
    run = unsharded_run.result()
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    alone = subprocess.run(
        [sys.executable, "-m", "harness.report", str(unsharded / "results"), "--out", str(tmp_path / "unsharded"),
         "--baseline", str(unsharded / "results" / "baseline.json"), "--ci"],
        cwd=ROOT, env=base_env, capture_output=True, text=True,
    )
    assert alone.returncode == 1, alone.stdout + alone.stderr
    single = json.loads((tmp_path / "unsharded" / "report.json").read_text())

    assert len(merged["runs"]) == len(matrix["include"]) and not merged["left_out"]
    assert sorted(r["shard"] for r in merged["runs"]) == [f"{i}/{SHARDS}" for i in (1, 2) for _ in WRAPPERS]
    assert merged["superseded_records"] == 0, "shards overlap"
    assert len(merged["tests"]) == TESTS_PER_WRAPPER * len(WRAPPERS)
    assert [[c["test"], c["wrapper"]] for c in merged["comparison"]["regressions"]] == [list(REGRESSION)]
    assert essence(merged) == essence(single)
    print(f"plan + {len(matrix['include'])} shard jobs + report + unsharded run: "
          f"{time.perf_counter() - started:.1f} s")
