"""Resolve which wrapper a run uses: CLI option, then environment, then ini; one place, one error text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ENV_VAR = "EXPORT_WRAPPER"
COMPAT_ENV_VAR = "EXPORT_PYTORCH_COMPAT"
COMPAT_OPTION = "--pytorch-compat"
COMPAT_INI_KEY = "export_pytorch_compat"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
OPTION = "--export-wrapper"
INI_KEY = "export_wrapper"


@dataclass(frozen=True)
class Selection:
    """A chosen wrapper name and where it came from (quoted in every error about it)."""

    name: str
    source: str


class SelectionError(ValueError):
    """A setting that names no wrapper at all (empty or blank)."""


def resolve_selection(
    cli_value: str | None, environ: Mapping[str, str], ini_value: str | None
) -> Selection | None:
    """Return the selection, or ``None`` when nothing asks for a wrapper.

    An explicitly empty value is an error rather than "no wrapper": a CI job that sets
    ``EXPORT_WRAPPER=$UNSET_VAR`` must not silently run unwrapped.
    """
    candidates = (
        (cli_value, f"command-line option {OPTION}"),
        (environ.get(ENV_VAR), f"environment variable {ENV_VAR}"),
        (ini_value or None, f"ini option {INI_KEY}"),
    )
    for value, source in candidates:
        if value is None:
            continue
        if not value.strip():
            raise SelectionError(f"{source} is set but empty; give a wrapper name or unset it")
        return Selection(value.strip(), source)
    return None


def resolve_compat(cli_flag: bool, environ: Mapping[str, str], ini_value: bool) -> bool:
    """PyTorch-compat mode: the CLI flag, else ``EXPORT_PYTORCH_COMPAT``, else the ini option."""
    if cli_flag:
        return True
    value = environ.get(COMPAT_ENV_VAR)
    if value is not None:
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
        raise SelectionError(
            f"environment variable {COMPAT_ENV_VAR}={value!r} is not a boolean; use one of "
            f"{', '.join(_TRUE + _FALSE[:-1])}"
        )
    return ini_value
