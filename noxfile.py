"""Nox sessions: one per export wrapper (from the registry), plus the harness's own checks.

Every session runs in one shared virtualenv under .nox/shared, made with the standard
library's venv and pip: torch (about 900 MB) is installed once, not once per session.
The environment is rebuilt only when a requirements file or pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from harness.selection import ENV_VAR  # noqa: E402  (needs ROOT on sys.path)
from harness.wrappers import BUILTIN_WRAPPERS, Wrapper  # noqa: E402

nox.options.default_venv_backend = "none"
nox.options.sessions = ["serdes_strict"]
nox.options.error_on_missing_interpreters = True

SHARED_ENV = ROOT / ".nox" / "shared"
REQUIREMENTS = (
    "requirements/torch.txt",
    "requirements/test.txt",
    "requirements/lint.txt",
    "requirements/nox.txt",  # so mypy sees nox's types
)
EXPORT_SUITE = ("tests/export", "tests/ops")
"""The suite a wrapper session runs: the hand-written feature tests and the OpInfo sweep."""
HARNESS_TESTS = "tests/harness"
DURATIONS_DIR = ROOT / "durations"
"""Per-wrapper test durations for --shard; harness/sharding.py reads the same place (DURATIONS_DIR there)."""


def shared_python(session: nox.Session) -> str:
    """Return the shared environment's python, creating or refreshing it if its inputs changed."""
    python = SHARED_ENV / "bin" / "python"
    stamp = SHARED_ENV / "requirements.sha256"
    digest = hashlib.sha256()
    for name in (*REQUIREMENTS, "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    wanted = digest.hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    if not python.exists():
        session.log(f"creating the shared environment {SHARED_ENV.relative_to(ROOT)}")
        session.run(sys.executable, "-m", "venv", str(SHARED_ENV), external=True)
    requirements = [arg for name in REQUIREMENTS for arg in ("-r", str(ROOT / name))]
    session.run(str(python), "-m", "pip", "install", "--quiet", *requirements, "-e", str(ROOT), external=True)
    stamp.write_text(wanted)
    return str(python)


def run_pytest(
    session: nox.Session, *args: str, wrapper: str | None, success_codes: tuple[int, ...] = (0,)
) -> None:
    """Run pytest in the shared environment; ``wrapper`` is exported as EXPORT_WRAPPER."""
    env = {ENV_VAR: wrapper} if wrapper is not None else {}
    session.run(
        shared_python(session), "-m", "pytest", *args, env=env, external=True, success_codes=list(success_codes)
    )


def _check_environment_agrees(session: nox.Session, wrapper: str) -> None:
    inherited = os.environ.get(ENV_VAR)
    if inherited is not None and inherited != wrapper:
        names = ", ".join(w.name for w in BUILTIN_WRAPPERS)
        session.error(
            f"{ENV_VAR}={inherited!r} is set in the environment, but session {wrapper!r} runs "
            f"{wrapper!r}; unset it, or use `nox -s export` to run the wrapper it names (valid: {names})"
        )


def _make_wrapper_session(wrapper: Wrapper) -> None:
    def session_func(session: nox.Session) -> None:
        _check_environment_agrees(session, wrapper.name)
        run_pytest(session, *EXPORT_SUITE, "-n", "auto", *session.posargs, wrapper=wrapper.name)

    session_func.__doc__ = f"Export suite under {wrapper.name}: {wrapper.description}."
    session_func.__name__ = wrapper.name
    nox.session(name=wrapper.name, tags=["wrappers", *wrapper.tags])(session_func)


for _wrapper in BUILTIN_WRAPPERS:
    _make_wrapper_session(_wrapper)


@nox.session
def export(session: nox.Session) -> None:
    """Export suite under the wrapper named by $EXPORT_WRAPPER (pytest rejects unknown names)."""
    if ENV_VAR not in os.environ:
        session.error(f"set {ENV_VAR} to a wrapper name, or run `nox -s <wrapper>`")
    run_pytest(session, *EXPORT_SUITE, "-n", "auto", *session.posargs, wrapper=os.environ[ENV_VAR])


@nox.session
def durations(session: nox.Session) -> None:
    """Refresh durations/<wrapper>.json, the shard balance, for the wrappers in posargs (default: all)."""
    known = [w.name for w in BUILTIN_WRAPPERS]
    unknown = [name for name in session.posargs if name not in known]
    if unknown:
        session.error(f"unknown wrapper(s) {', '.join(unknown)}; valid: {', '.join(known)}")
    for name in session.posargs or known:
        path = DURATIONS_DIR / f"{name}.json"
        session.log(f"timing the export suite under {name} into {path.relative_to(ROOT)}")
        # --clean-durations drops tests that no longer exist; a failing test's time is still its time.
        run_pytest(
            session, *EXPORT_SUITE, "-n", "auto", "-q", "-p", "no:cacheprovider", "--store-durations",
            "--clean-durations", f"--durations-path={path}", wrapper=name, success_codes=(0, 1),
        )


@nox.session
def tests(session: nox.Session) -> None:
    """The harness's own tests, a quick pass of the export suite under every wrapper, then lint."""
    session.notify("lint")
    run_pytest(session, HARNESS_TESTS, "-n", "auto", *session.posargs, wrapper=None)
    for wrapper in BUILTIN_WRAPPERS:
        session.log(f"quick pass under {wrapper.name}")
        run_pytest(session, *EXPORT_SUITE, "-n", "auto", "-q", "-m", "quick", wrapper=wrapper.name)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy (strict) over the package and the noxfile."""
    python = shared_python(session)
    session.run(python, "-m", "ruff", "check", ".", external=True)
    session.run(python, "-m", "mypy", external=True)


@nox.session
def matrix(session: nox.Session) -> None:
    """Export suite under every wrapper in one pytest run (matrix mode); writes results/matrix.json."""
    run_pytest(session, *EXPORT_SUITE, "--export-wrapper", "all", "-n", "auto", *session.posargs, wrapper=None)


@nox.session
def report(session: nox.Session) -> None:
    """Merge results/*.json into reports/report.{md,html,json}; compare with results/baseline.json."""
    ci = ["--ci"] if os.environ.get("CI", "").lower() in ("1", "true", "yes") else []
    # Inputs default to results/ (the CLI's default), so results files named in posargs replace it.
    args = ("--out", "reports", "--baseline", "results/baseline.json", *ci, *session.posargs)
    session.run(shared_python(session), "-m", "harness.report", *args, external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Harness overhead, per-wrapper cost, xdist scaling and start-up: a table, and reports/bench.json."""
    session.run(shared_python(session), "tools/bench.py", *session.posargs, external=True)
