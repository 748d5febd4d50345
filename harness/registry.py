"""The one list of wrappers: built-ins plus those other projects register by entry point, and the mutants apart.

Every consumer (CLI choices, nox sessions, error texts, docs) asks here, and so does everything that
reads wrapper names back: a selection value (``all``, ``a,b``) and a matrix test id (``test_x[a]``).
Other projects add a wrapper with, in their pyproject.toml::

    [project.entry-points."torch_export_harness.wrappers"]
    my_backend = "my_pkg.harness_wrappers:MY_BACKEND"   # a harness.Wrapper named "my_backend"

The mutants (``harness.mutants.MUTANTS``, wrong on purpose) are selectable by name, alone or in a list, but
are not wrappers of the registry proper: ``all`` does not run them, marks cannot name them, and the nox
sessions, the README table and ``harness.wrapper_names()`` leave them out (:func:`mutant_wrappers` lists them).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib.metadata import entry_points

from harness.errors import UnknownWrapperError, WrapperPluginError
from harness.mutants import MUTANTS
from harness.wrappers import BUILTIN_WRAPPERS, Wrapper

ENTRY_POINT_GROUP = "torch_export_harness.wrappers"

ALL = "all"
"""The selection value that means every registered wrapper (matrix mode)."""

MATRIX_RUN = "matrix"
"""How a run of several wrappers names itself where a single run gives its wrapper (results file names)."""


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
        if wrapper.name in mutant_wrappers():
            raise WrapperPluginError(f"{where} reuses the mutant name {wrapper.name!r}")
        loaded.append(wrapper)
    return tuple(loaded)


@cache
def available_wrappers() -> dict[str, Wrapper]:
    """Every real wrapper by name, built-ins first, in a stable order (the mutants: :func:`mutant_wrappers`)."""
    return {w.name: w for w in (*BUILTIN_WRAPPERS, *_load_entry_point_wrappers())}


@cache
def mutant_wrappers() -> dict[str, Wrapper]:
    """The mutants by name, in report order: selectable by name, never part of ``all``."""
    return {w.name: w for w in MUTANTS}


def selectable_wrappers() -> dict[str, Wrapper]:
    """Every name ``--export-wrapper`` accepts: the real wrappers, then the mutants."""
    return {**available_wrappers(), **mutant_wrappers()}


def get_wrapper(name: str, source: str = "argument") -> Wrapper:
    """Look a wrapper (or a mutant) up; ``source`` says where the name came from, for the error text."""
    wrappers = selectable_wrappers()
    try:
        return wrappers[name]
    except KeyError:
        raise UnknownWrapperError(name, source, wrappers) from None


def is_matrix(value: str) -> bool:
    """Whether a selection value asks for several wrappers: ``all`` or a comma-separated list."""
    return value.strip() == ALL or "," in value


def parse_wrappers(value: str, source: str) -> tuple[Wrapper, ...]:
    """The wrappers a selection value names: one name, ``all`` (registry order) or ``a,b`` (given order).

    ``all`` is every real wrapper; a mutant is selected only by its name. Unknown names raise
    :class:`UnknownWrapperError`, which lists the valid names (mutants included) and quotes ``source``.
    """
    if value.strip() == ALL:
        return tuple(available_wrappers().values())
    known = selectable_wrappers()
    names = list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not names:
        raise UnknownWrapperError(value, source, known)
    for name in names:
        if name not in known:
            raise UnknownWrapperError(name, source, known)
    return tuple(known[name] for name in names)


def split_matrix_id(nodeid: str, wrappers: Sequence[str]) -> tuple[str, str | None]:
    """``(test id without the wrapper, wrapper)`` for a matrix node id; ``(nodeid, None)`` if it has none.

    Matrix mode appends the wrapper's name as the last parametrization id, so
    ``a.py::test_x[serdes_strict]`` gives ``("a.py::test_x", "serdes_strict")`` and
    ``a.py::test_op[add-sample0-cpp_serdes]`` gives ``("a.py::test_op[add-sample0]", "cpp_serdes")``.
    Longer names are tried first so that ``non_strict`` never matches as ``strict``.
    """
    if not nodeid.endswith("]"):
        return nodeid, None
    for name in sorted(wrappers, key=len, reverse=True):
        if nodeid.endswith(f"[{name}]"):
            return nodeid[: -len(name) - 2], name
        if nodeid.endswith(f"-{name}]"):
            return nodeid[: -len(name) - 2] + "]", name
    return nodeid, None
