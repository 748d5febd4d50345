"""The run plan: which wrappers, PyTorch-compat mode and shard, resolved once from CLI, environment and ini.

One resolver, in the manner of pytest-timeout: each setting is looked up on the command line, then in
the environment, then in the ini file, and keeps the name of the place it came from, so that every
error about it can quote that place. The plugin resolves the plan once in ``pytest_cmdline_main``,
keeps it in ``config.stash`` and hands it to xdist workers through ``workerinput``; nothing re-derives
it later. Pure code: neither pytest nor torch is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from harness.registry import ALL, MATRIX_RUN, is_matrix, parse_wrappers
from harness.sharding import Shard, ShardError, resolve_shard

T = TypeVar("T")

OPTION = "--export-wrapper"
ENV_VAR = "EXPORT_WRAPPER"
INI_KEY = "export_wrapper"
COMPAT_OPTION = "--pytorch-compat"
COMPAT_ENV_VAR = "EXPORT_PYTORCH_COMPAT"
COMPAT_INI_KEY = "export_pytorch_compat"
WORKER_SOURCE = "the xdist controller"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")

WRAPPER_HELP = (
    f"export wrapper to install in place of torch.export.export: a name (see --export-wrapper-list), "
    f"'{ALL}', or a comma-separated list (the last two run every test once per wrapper: matrix mode). "
    f"Looked up in this order: {OPTION}, ${ENV_VAR}, the {INI_KEY} ini option"
)
WRAPPER_INI_HELP = f"export wrapper used when neither {OPTION} nor ${ENV_VAR} names one (same values as {OPTION})"
COMPAT_HELP = (
    "PyTorch-compat mode: wrap only the `export` names bound in test modules (the qualified "
    "torch.export.export stays the original, PyTorch's escape hatch) and show unittest tests "
    f"their variant through self._testMethodName's suffix (also ${COMPAT_ENV_VAR}=1, or the "
    f"{COMPAT_INI_KEY} ini option)"
)


class PlanError(ValueError):
    """A setting that cannot be used; the message names the value and where it came from."""


@dataclass(frozen=True)
class Setting(Generic[T]):
    """A resolved value and the place it came from (quoted in every error about it)."""

    value: T
    source: str


@dataclass(frozen=True)
class RunPlan:
    """What this run does: no wrapper, one wrapper, or several (matrix mode); compat mode; the shard."""

    wrappers: Setting[tuple[str, ...]] | None
    compat: Setting[bool]
    shard: Shard | None = None
    matrix: bool = False

    @property
    def wrapped(self) -> bool:
        """Whether any wrapper is installed."""
        return self.wrappers is not None

    @property
    def names(self) -> tuple[str, ...]:
        return () if self.wrappers is None else self.wrappers.value

    @property
    def run_name(self) -> str | None:
        """The wrapper's name, ``matrix`` for several, ``None`` when unwrapped (names results and durations)."""
        if self.wrappers is None:
            return None
        return MATRIX_RUN if self.matrix else self.wrappers.value[0]

    def to_workerinput(self) -> dict[str, Any]:
        """The plan as plain values for ``node.workerinput`` (xdist sends it to each worker once)."""
        return {
            "wrappers": list(self.names) if self.wrappers is not None else None,
            "matrix": self.matrix,
            "compat": self.compat.value,
            "shard": None if self.shard is None else [self.shard.index, self.shard.count],
        }

    @classmethod
    def from_workerinput(cls, data: Mapping[str, Any]) -> RunPlan:
        names = data["wrappers"]
        shard = data["shard"]
        return cls(
            wrappers=None if names is None else Setting(tuple(names), WORKER_SOURCE),
            compat=Setting(bool(data["compat"]), WORKER_SOURCE),
            shard=None if shard is None else Shard(int(shard[0]), int(shard[1]), WORKER_SOURCE),
            matrix=bool(data["matrix"]),
        )


def first_set(candidates: tuple[tuple[str | None, str], ...]) -> Setting[str] | None:
    """The first value that is set, with its source; an explicitly empty value is an error.

    ``EXPORT_WRAPPER=$UNSET_VAR`` in a CI job must not silently run unwrapped.
    """
    for value, source in candidates:
        if value is None:
            continue
        if not value.strip():
            raise PlanError(f"{source} is set but empty; give a wrapper name or unset it")
        return Setting(value.strip(), source)
    return None


def wrapper_setting(cli: str | None, environ: Mapping[str, str], ini: str | None) -> Setting[str] | None:
    """The raw wrapper value: ``--export-wrapper``, else ``$EXPORT_WRAPPER``, else the ini option."""
    return first_set(
        (
            (cli, f"command-line option {OPTION}"),
            (environ.get(ENV_VAR), f"environment variable {ENV_VAR}"),
            (ini or None, f"ini option {INI_KEY}"),
        )
    )


def compat_setting(cli_flag: bool, environ: Mapping[str, str], ini_value: bool) -> Setting[bool]:
    """PyTorch-compat mode: the CLI flag, else ``$EXPORT_PYTORCH_COMPAT``, else the ini option."""
    if cli_flag:
        return Setting(True, f"command-line option {COMPAT_OPTION}")
    value = environ.get(COMPAT_ENV_VAR)
    if value is not None:
        source = f"environment variable {COMPAT_ENV_VAR}"
        if value.strip().lower() in _TRUE:
            return Setting(True, source)
        if value.strip().lower() in _FALSE:
            return Setting(False, source)
        raise PlanError(f"{source}={value!r} is not a boolean; use one of {', '.join(_TRUE + _FALSE[:-1])}")
    return Setting(ini_value, f"ini option {COMPAT_INI_KEY}")


def resolve(
    *,
    cli_wrapper: str | None,
    cli_compat: bool,
    cli_shard: str | None,
    environ: Mapping[str, str],
    ini_wrapper: str | None,
    ini_compat: bool,
) -> RunPlan:
    """The plan, every name checked against the registry; raises :class:`PlanError` naming the source.

    The registry's :class:`~harness.errors.UnknownWrapperError` and
    :class:`~harness.errors.WrapperPluginError` pass through (they name their source too).
    """
    raw = wrapper_setting(cli_wrapper, environ, ini_wrapper)
    compat = compat_setting(cli_compat, environ, ini_compat)
    try:
        shard = resolve_shard(cli_shard, environ)
    except ShardError as exc:
        raise PlanError(str(exc)) from exc
    if raw is None:
        return RunPlan(None, compat, shard)
    wrappers = parse_wrappers(raw.value, raw.source)
    matrix = is_matrix(raw.value)
    if matrix and compat.value:
        raise PlanError(
            f"{compat.source} cannot be combined with matrix mode ({raw.value!r} from {raw.source}): "
            "PyTorch-style suites are unittest.TestCase classes, which pytest cannot parametrize per wrapper; "
            "run them one wrapper at a time"
        )
    return RunPlan(Setting(tuple(w.name for w in wrappers), raw.source), compat, shard, matrix)
