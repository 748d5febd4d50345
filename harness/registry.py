"""The one list of wrappers: built-ins plus those other projects register by entry point.

Every consumer (CLI choices, nox sessions, error texts, docs) asks here.
Other projects add a wrapper with, in their pyproject.toml::

    [project.entry-points."torch_export_harness.wrappers"]
    my_backend = "my_pkg.harness_wrappers:MY_BACKEND"   # a harness.Wrapper named "my_backend"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from harness.errors import UnknownWrapperError, WrapperPluginError
from harness.wrappers import BUILTIN_WRAPPERS, Wrapper

ENTRY_POINT_GROUP = "torch_export_harness.wrappers"


def _load_entry_point_wrappers() -> tuple[Wrapper, ...]:
    builtin_names = {w.name for w in BUILTIN_WRAPPERS}
    loaded: list[Wrapper] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name!r} ({ep.value}) in group {ENTRY_POINT_GROUP!r}"
        try:
            wrapper = ep.load()
        except Exception as exc:
            raise WrapperPluginError(f"{where} failed to import: {type(exc).__name__}: {exc}") from exc
        if not isinstance(wrapper, Wrapper):
            raise WrapperPluginError(f"{where} is a {type(wrapper).__name__}, not a harness.Wrapper")
        if wrapper.name != ep.name:
            raise WrapperPluginError(f"{where} holds a wrapper named {wrapper.name!r}; the names must match")
        if wrapper.name in builtin_names:
            raise WrapperPluginError(f"{where} reuses the built-in wrapper name {wrapper.name!r}")
        loaded.append(wrapper)
    return tuple(loaded)


@cache
def available_wrappers() -> dict[str, Wrapper]:
    """Every wrapper by name, built-ins first, in a stable order."""
    return {w.name: w for w in (*BUILTIN_WRAPPERS, *_load_entry_point_wrappers())}


def get_wrapper(name: str, source: str = "argument") -> Wrapper:
    """Look a wrapper up; ``source`` says where the name came from, for the error text."""
    wrappers = available_wrappers()
    try:
        return wrappers[name]
    except KeyError:
        raise UnknownWrapperError(name, source, wrappers) from None
