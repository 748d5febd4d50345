"""What a fresh interpreter with plain torch can import: the standard library and installed packages.

A bundle's pickles (inputs, a program's dump) are loaded by ``repro.py`` with the harness and the test
suite not importable. A class or function they refer to by name must therefore come from the standard
library or from site-packages, never from the harness, the test suite, a ``conftest`` or ``__main__``
(nor from a project installed in editable mode, whose files live outside site-packages).
"""

from __future__ import annotations

import _compat_pickle
import pickle
import site
import sys
import sysconfig
import types
from functools import cache
from pathlib import Path
from typing import Any

NEVER = frozenset({"__main__", "__mp_main__", "harness", "conftest", "tests"})
"""Top-level modules a plain-torch interpreter never has, wherever they live."""


@cache
def _library_roots() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.update(site.getsitepackages())
    return tuple(Path(root).resolve() for root in roots if root)


def portable_module(name: str) -> bool:
    """Whether a fresh interpreter imports module ``name`` from the same places (stdlib, site-packages)."""
    top = name.partition(".")[0]
    if not top or top in NEVER:
        return False
    if top in sys.builtin_module_names:
        return True
    module = sys.modules.get(top)
    if module is None:
        return False
    locations = [getattr(module, "__file__", None), *list(getattr(module, "__path__", []) or [])]
    files = [Path(p).resolve() for p in locations if p]
    if not files:
        return True  # frozen or built in
    roots = _library_roots()
    return all(any(f.is_relative_to(root) for root in roots) for f in files)


def portable_object(thing: Any) -> bool:
    """Whether a class or function pickles to a name a fresh interpreter can import."""
    module = getattr(thing, "__module__", None)
    return isinstance(module, str) and portable_module(module)


def foreign_globals(path: Path) -> list[str]:
    """The names a ``torch.save`` file refers to that a plain-torch interpreter cannot import (sorted)."""
    import torch

    seen: set[tuple[str, str]] = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            # torch.save writes protocol 2, whose Python 2 names (__builtin__.dict) pickle maps on load
            if (module, name) in _compat_pickle.NAME_MAPPING:
                seen.add(_compat_pickle.NAME_MAPPING[(module, name)])
            else:
                seen.add((_compat_pickle.IMPORT_MAPPING.get(module, module), name))
            return super().find_class(module, name)

    probe = types.ModuleType("pickle")
    probe.Unpickler = Recording  # type: ignore[attr-defined]
    probe.load = pickle.load  # type: ignore[attr-defined]
    probe.__name__ = "pickle"
    torch.load(path, weights_only=False, pickle_module=probe)
    return sorted(f"{module}.{name}" for module, name in seen if not portable_module(module))
