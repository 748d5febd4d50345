"""Nox sessions: one per export wrapper (from the registry), plus the harness's own checks.

Every session that runs pytest runs in one shared virtualenv under .nox/shared, made with the
standard library's venv and pip: torch (about 900 MB) is installed once, not once per session. The wrapper
sessions need only torch and the test tools (REQUIREMENTS: all a CI shard job installs); the sessions that
check the harness itself top the same environment up with DEV_REQUIREMENTS. Each layer has its own stamp and
is reinstalled only when its requirements files or pyproject.toml change. `nox -s report` needs no
environment: it runs on nox's own Python (standard library only, no torch).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from harness.golden import MARKER as GOLDEN_MARKER  # noqa: E402  (needs ROOT on sys.path; no pytest, no torch)
from harness.golden import WRAPPER as GOLDEN_WRAPPER  # noqa: E402
from harness.mutants import LOG_ENV as MUTANTS_LOG_ENV  # noqa: E402
from harness.mutants import matrix_value as mutants_matrix  # noqa: E402
from harness.plan import ENV_VAR  # noqa: E402  (needs ROOT on sys.path; no pytest, no torch)
from harness.sharding import DURATIONS_DIR as DURATIONS_DIRNAME  # noqa: E402
from harness.wrappers import BUILTIN_WRAPPERS, Wrapper  # noqa: E402

nox.options.default_venv_backend = "none"
nox.options.sessions = ["serdes_strict"]
nox.options.error_on_missing_interpreters = True

SHARED_ENV = ROOT / ".nox" / "shared"
REQUIREMENTS = (
    "requirements/torch.txt",
    "requirements/test.txt",
)
"""What the export suite runs with: the whole environment of a wrapper session (and of a CI shard job)."""
DEV_REQUIREMENTS = (
    "requirements/dev.txt",  # check-jsonschema, playwright, hypothesis: the harness's own tests
    "requirements/lint.txt",
    "requirements/nox.txt",  # so mypy sees nox's types, and the workflow tests can run `nox -l`
)
"""Topped up into the shared environment by the sessions that check the harness (``shared_python(dev=True)``)."""
EXPORT_SUITE = ("tests/export", "tests/ops")
"""The built-in suite: the hand-written feature tests and the OpInfo sweep."""
SUITE_BY_DEFAULT = ("-o", f"testpaths={' '.join(EXPORT_SUITE)}")
"""How sessions name the built-in suite: as pytest's testpaths, so test paths given after `--` replace it."""
QUIET = ("-rfE", "--disable-warnings")
"""A wrapper session ends with its outcome: failures and errors listed, warnings counted by category.

Given after the session's own arguments, `-ra` or `-rw` (or any -r) in the posargs wins."""
RESULTS = ("--results-dir=results", "--repro-dir=reports/repro")
"""Sessions keep their results files in results/ (plain pytest writes none unless asked), and a repro bundle per
unexpected failure of a wrapper stage or of a check after a transformation in reports/repro/ (docs/repro-bundles.md)."""
HARNESS_TESTS = "tests/harness"
XDIST = ("-n", "auto", "--dist", "worksteal")
"""How the export suite is spread over cores: worksteal was as fast as or faster than load, loadscope and
loadfile on the full suite under two wrappers (README, "pytest-xdist's distribution mode")."""
DURATIONS_DIR = ROOT / DURATIONS_DIRNAME
"""Per-wrapper test durations for --shard (harness/sharding.py names the folder)."""
GOLDEN = ("tests/export", "-m", GOLDEN_MARKER)
"""The golden subset of the export suite, whose first programs are stored under artifacts/ and checked under
GOLDEN_WRAPPER (harness/golden/)."""
TORCH_VERSIONS_ENV = "TORCH_VERSIONS"


def _digest(names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def shared_python(session: nox.Session, *, dev: bool = False) -> str:
    """Return the shared environment's python, creating or refreshing it if its inputs changed.

    The environment has :data:`REQUIREMENTS` and the harness (stamp ``requirements.sha256``); with ``dev``
    it is topped up with :data:`DEV_REQUIREMENTS` too (stamp ``dev-requirements.sha256``, which covers the
    base files as well, so a changed pin refreshes both). torch is installed once either way.
    """
    python = SHARED_ENV / "bin" / "python"
    base_stamp, dev_stamp = SHARED_ENV / "requirements.sha256", SHARED_ENV / "dev-requirements.sha256"
    base_names = (*REQUIREMENTS, "pyproject.toml")
    dev_names = (*base_names, *DEV_REQUIREMENTS)
    base_wanted, dev_wanted = _digest(base_names), _digest(dev_names)

    def current(stamp: Path, wanted: str) -> bool:
        return python.exists() and stamp.exists() and stamp.read_text() == wanted

    base_ok, dev_ok = current(base_stamp, base_wanted), current(dev_stamp, dev_wanted)
    if base_ok and (dev_ok or not dev):
        return str(python)
    if not python.exists():
        session.log(f"creating the shared environment {os.path.relpath(SHARED_ENV, ROOT)}")
        session.run(sys.executable, "-m", "venv", str(SHARED_ENV), external=True)
    elif dev and base_ok:
        session.log(f"topping up {os.path.relpath(SHARED_ENV, ROOT)} with {', '.join(DEV_REQUIREMENTS)}")
    # The base files go to pip in a top-up too (already satisfied), so the dev tools resolve against its pins.
    names = (*REQUIREMENTS, *DEV_REQUIREMENTS) if dev else REQUIREMENTS
    requirements = [arg for name in names for arg in ("-r", str(ROOT / name))]
    package = () if base_ok else ("-e", str(ROOT))
    session.run(str(python), "-m", "pip", "install", "--quiet", *requirements, *package, external=True)
    base_stamp.write_text(base_wanted)
    if dev:
        dev_stamp.write_text(dev_wanted)
    return str(python)


def run_pytest(
    session: nox.Session,
    *args: str,
    wrapper: str | None,
    success_codes: tuple[int, ...] = (0,),
    python: str | None = None,
) -> None:
    """Run pytest in the shared environment (or ``python``'s); ``wrapper`` is exported as EXPORT_WRAPPER."""
    env = pytest_env(session, {ENV_VAR: wrapper} if wrapper is not None else {})
    session.run(
        python or shared_python(session), "-m", "pytest", *args, env=env, external=True,
        success_codes=list(success_codes),
    )


NO_BYTECODE_ENV = "PYTHONDONTWRITEBYTECODE"


def pytest_env(session: nox.Session, env: dict[str, str | None]) -> dict[str, str | None]:
    """``env`` for a pytest run, with Python's bytecode caches allowed (said in the session's log when overridden).

    With PYTHONDONTWRITEBYTECODE set, pytest cannot keep its assertion-rewritten test modules either, so every
    process (the controller and each xdist worker) compiles and rewrites the suite again: about 2 s more to the
    first result of ``nox -s cpp_serdes -- -k dynamic`` on a 2-core machine (docs/benchmarks.md). The caches go
    to git-ignored ``__pycache__`` folders; a read-only tree just goes without them.
    """
    if os.environ.get(NO_BYTECODE_ENV):
        session.log(f"{NO_BYTECODE_ENV} is set; unset for pytest, so test modules are compiled and rewritten once")
        return {**env, NO_BYTECODE_ENV: None}
    return env


def pinned_torch() -> str:
    """The torch version requirements/torch.txt pins (the shared environment's)."""
    for line in (ROOT / "requirements/torch.txt").read_text().splitlines():
        if line.startswith("torch=="):
            return line.removeprefix("torch==").strip()
    raise RuntimeError("requirements/torch.txt pins no torch==VERSION")


def torch_python(session: nox.Session, version: str) -> str:
    """A python with torch ``version``, the test requirements and the harness: the shared env for the pin.

    Other versions get their own venv (.nox/torch-VERSION; standard library venv and pip, like the shared
    one: uv would fetch CUDA builds from the index instead of the local wheels), with torch pinned exactly
    and the rest of requirements/torch.txt and requirements/test.txt as pinned; refreshed when those change.
    """
    if version == pinned_torch():
        return shared_python(session)
    env = ROOT / ".nox" / f"torch-{version}"
    python, stamp = env / "bin" / "python", env / "requirements.sha256"
    others = [line for line in (ROOT / "requirements/torch.txt").read_text().splitlines()
              if line.strip() and not line.startswith(("#", "torch=="))]
    digest = hashlib.sha256(version.encode())
    for name in ("requirements/torch.txt", "requirements/test.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    if python.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
        return str(python)
    if not python.exists():
        session.log(f"creating {env.relative_to(ROOT)} (torch {version}; a CUDA build is several GB)")
        session.run(sys.executable, "-m", "venv", str(env), external=True)
    session.run(
        str(python), "-m", "pip", "install", "--quiet", f"torch=={version}", *others,
        "-r", str(ROOT / "requirements/test.txt"), "-e", str(ROOT), external=True,
    )
    stamp.write_text(digest.hexdigest())
    return str(python)


def torch_versions(session: nox.Session) -> list[str]:
    """The versions to cross: $TORCH_VERSIONS (comma-separated, e.g. 2.13.0,2.14.1), else the pinned torch alone."""
    raw = os.environ.get(TORCH_VERSIONS_ENV)
    versions = [v.strip() for v in raw.split(",") if v.strip()] if raw is not None else [pinned_torch()]
    if not versions:
        session.error(f"{TORCH_VERSIONS_ENV}={raw!r} names no version; give e.g. {TORCH_VERSIONS_ENV}=2.13.0,2.14.1")
    return list(dict.fromkeys(versions))


def _check_environment_agrees(session: nox.Session, wrapper: str) -> None:
    inherited = os.environ.get(ENV_VAR)
    if inherited is not None and inherited != wrapper:
        names = ", ".join(w.name for w in BUILTIN_WRAPPERS)
        session.error(
            f"{ENV_VAR}={inherited!r} is set in the environment, but session {wrapper!r} runs "
            f"{wrapper!r}; unset it, or use `nox -s export` to run the wrapper it names (valid: {names})"
        )


def quiet_unless_asked(posargs: list[str]) -> tuple[str, ...]:
    """:data:`QUIET`, except where the posargs ask for the short summary or the warnings themselves."""
    asked = any(arg.startswith(("-r", "-W", "--disable-warnings")) for arg in posargs)
    return () if asked else QUIET


def _make_wrapper_session(wrapper: Wrapper) -> None:
    def session_func(session: nox.Session) -> None:
        _check_environment_agrees(session, wrapper.name)
        quiet = quiet_unless_asked(session.posargs)
        run_pytest(session, *SUITE_BY_DEFAULT, *XDIST, *RESULTS, *quiet, *session.posargs, wrapper=wrapper.name)

    session_func.__doc__ = f"Export suite (or the test paths given) under {wrapper.name}: {wrapper.description}."
    session_func.__name__ = wrapper.name
    nox.session(name=wrapper.name, tags=["wrappers", *wrapper.tags])(session_func)


for _wrapper in BUILTIN_WRAPPERS:
    _make_wrapper_session(_wrapper)


@nox.session
def export(session: nox.Session) -> None:
    """Export suite (or the test paths given) under the wrapper $EXPORT_WRAPPER names (pytest rejects unknown ones)."""
    if ENV_VAR not in os.environ:
        session.error(f"set {ENV_VAR} to a wrapper name, or run `nox -s <wrapper>`")
    quiet = quiet_unless_asked(session.posargs)
    run_pytest(session, *SUITE_BY_DEFAULT, *XDIST, *RESULTS, *quiet, *session.posargs, wrapper=os.environ[ENV_VAR])


@nox.session
def durations(session: nox.Session) -> None:
    """Refresh durations/<wrapper>.json, the shard balance, for the wrappers in posargs (default: all).

    Test paths (anything that is not a wrapper name) replace the built-in suite.
    """
    known = [w.name for w in BUILTIN_WRAPPERS]
    names = [arg for arg in session.posargs if arg in known]
    paths = [arg for arg in session.posargs if arg not in known]
    unknown = [arg for arg in paths if not Path(arg.partition("::")[0]).exists()]
    if unknown:
        session.error(f"{', '.join(unknown)}: neither a wrapper nor a test path; wrappers: {', '.join(known)}")
    for name in names or known:
        path = DURATIONS_DIR / f"{name}.json"
        session.log(f"timing the export suite under {name} into {path.relative_to(ROOT)}")
        # --clean-durations drops tests that no longer exist; a failing test's time is still its time.
        run_pytest(
            session, *(paths or EXPORT_SUITE), *XDIST, "-q", "-p", "no:cacheprovider", "--store-durations",
            "--clean-durations", f"--durations-path={path}", wrapper=name, success_codes=(0, 1),
        )


@nox.session
def tests(session: nox.Session) -> None:
    """The harness's own tests, a quick pass of the export suite under every wrapper, then lint."""
    session.notify("lint")
    shared_python(session, dev=True)  # the harness tests need the dev tools; the passes below reuse the env
    run_pytest(session, HARNESS_TESTS, "-n", "auto", *session.posargs, wrapper=None)
    for wrapper in BUILTIN_WRAPPERS:
        session.log(f"quick pass under {wrapper.name}")
        run_pytest(session, *EXPORT_SUITE, *XDIST, "-q", "-m", "quick", wrapper=wrapper.name)
    session.log("golden artifacts against a fresh export")
    run_pytest(session, *GOLDEN, "-n", "auto", "-q", wrapper=GOLDEN_WRAPPER)


@nox.session
def artifacts(session: nox.Session) -> None:
    """Check the golden artifacts under non_strict; `-- --accept` stores them anew (review the sidecar diff)."""
    _check_environment_agrees(session, GOLDEN_WRAPPER)
    args = ["--golden-accept" if arg == "--accept" else arg for arg in session.posargs]
    # A results file of 60 tests must not replace results/non_strict.json, a whole suite's (--results in args wins).
    results = str(Path(session.create_tmp()) / "golden.json")
    run_pytest(session, *GOLDEN, "-q", "--results", results, *args, wrapper=GOLDEN_WRAPPER)


@nox.session
def torch_matrix(session: nox.Session) -> None:
    """Golden artifacts saved under each torch of $TORCH_VERSIONS, checked under each: reports/torch_matrix.json."""
    _check_environment_agrees(session, GOLDEN_WRAPPER)
    versions = torch_versions(session)
    pythons = {version: torch_python(session, version) for version in versions}
    for version, python in pythons.items():
        check = f"import sys, torch; sys.exit(torch.__version__.split('+')[0] != {version!r})"
        session.run(python, "-c", check, external=True, silent=True)
    tmp = Path(session.create_tmp()).resolve()
    common = ("-q", "-p", "no:cacheprovider", *session.posargs)
    cells: list[str] = []
    for saved in versions:
        directory = tmp / f"golden-{saved}"
        shutil.rmtree(directory, ignore_errors=True)
        start = time.perf_counter()
        run_pytest(
            session, *GOLDEN, *common, "--golden-accept", "--golden-dir", str(directory),
            "--results", str(tmp / f"results-accept-{saved}.json"),
            wrapper=GOLDEN_WRAPPER, python=pythons[saved], success_codes=(0, 1),
        )
        session.log(f"saved under torch {saved} in {time.perf_counter() - start:.1f} s")
        for loaded in versions:
            report = tmp / f"golden-{saved}-in-{loaded}.json"
            start = time.perf_counter()
            run_pytest(
                session, *GOLDEN, *common, "--golden-dir", str(directory), "--golden-report", str(report),
                "--results", str(tmp / f"results-{saved}-in-{loaded}.json"),
                wrapper=GOLDEN_WRAPPER, python=pythons[loaded], success_codes=(0, 1),
            )
            session.log(f"saved under {saved}, checked under {loaded} in {time.perf_counter() - start:.1f} s")
            cells += ["--cell", saved, loaded, str(report)]
    out = ROOT / "reports" / "torch_matrix.json"
    session.run(shared_python(session), "-m", "harness.golden.matrix", "--out", str(out), *cells, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy (strict) over the package and the noxfile."""
    python = shared_python(session, dev=True)
    session.run(python, "-m", "ruff", "check", ".", external=True)
    session.run(python, "-m", "mypy", external=True)


@nox.session
def matrix(session: nox.Session) -> None:
    """Export suite (or the test paths given) under every wrapper in one pytest run (matrix mode)."""
    run_pytest(
        session, *SUITE_BY_DEFAULT, "--export-wrapper", "all", *XDIST, *RESULTS, *quiet_unless_asked(session.posargs),
        *session.posargs, wrapper=None,
    )


@nox.session
def mutants(session: nox.Session) -> None:
    """Export suite (or the test paths given) under non_strict and every mutant: each mutant's kill rate.

    One matrix run (`--export-wrapper non_strict,mutant_...`; a later `--export-wrapper` in the posargs picks
    other mutants), its results file and the mutants' events in the session's tmp directory, then
    `python -m harness.mutants report`: the table, survivors per module and the passing tests no mutant
    reaches, printed and written to reports/mutants.json. Failing tests are the point, so they do not fail
    the session; the cache is off so that `--lf` never picks up a mutant's failures.
    """
    tmp = Path(session.create_tmp()).resolve()
    results, events = tmp / "mutants-results.json", tmp / "mutant-events"
    shutil.rmtree(events, ignore_errors=True)
    results.unlink(missing_ok=True)
    python = shared_python(session)
    session.run(
        python, "-m", "pytest", *SUITE_BY_DEFAULT, "--export-wrapper", mutants_matrix(), *XDIST, "-q", "--tb=no",
        "-rN", "--disable-warnings", "-p", "no:cacheprovider", "--results", str(results), *session.posargs,
        env=pytest_env(session, {MUTANTS_LOG_ENV: str(events)}), external=True, success_codes=[0, 1],
    )
    out = ROOT / "reports" / "mutants.json"
    session.run(python, "-m", "harness.mutants", "report", str(results), "--events", str(events), "--out", str(out),
                external=True)


@nox.session
def report(session: nox.Session) -> None:
    """The newest selection in results/ into reports/report.{md,html,json}, against results/baseline.json."""
    ci = ["--ci"] if os.environ.get("CI", "").lower() in ("1", "true", "yes") else []
    # Inputs default to results/ (the CLI's default), so results files named in posargs replace it; the CLI
    # merges the newest file's selection and lists the files of other selections it left out
    # (`-- --all-selections` merges everything, `-- --selection KEY` picks one).
    args = ("--out", "reports", "--baseline", "results/baseline.json", *ci, *session.posargs)
    # harness.report is the standard library only (no torch, no pytest): nox's own Python runs it from the
    # checkout (nox runs sessions in the noxfile's directory), so no environment is built. The CI report job
    # installs nox alone. A Python older than the harness supports falls back to the shared environment.
    python = sys.executable if sys.version_info >= (3, 11) else shared_python(session)
    session.run(python, "-m", "harness.report", *args, external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Harness overhead, per-wrapper cost, xdist scaling and start-up: a table, and reports/bench.json."""
    session.run(shared_python(session), "tools/bench.py", *session.posargs, external=True)


@nox.session
def shards(session: nox.Session) -> None:
    """How even --shard I/N is for each wrapper's stored durations: `-- WRAPPER... --shards 2 4 8 --goal 1.1`."""
    session.run(shared_python(session), "-m", "harness.sharding", *session.posargs, external=True)
