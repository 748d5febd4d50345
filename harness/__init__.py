"""torch-export-harness: run one torch.export suite under many export wrappers.

The public API is small and imports neither torch nor pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import ExportWrapperError, UnknownWrapperError, WrapperPluginError
from harness.wrappers import Wrapper, WrapperCall, as_called, strict_by_default

if TYPE_CHECKING:
    from harness.wrappers import ExportFn

__all__ = [
    "ExportWrapperError",
    "UnknownWrapperError",
    "Wrapper",
    "WrapperCall",
    "WrapperPluginError",
    "active_wrapper",
    "as_called",
    "original_export",
    "strict_by_default",
    "wrapper_names",
]
__version__ = "0.1.0"


def wrapper_names() -> list[str]:
    """Every wrapper name: built-ins and those registered by entry point."""
    from harness.registry import available_wrappers

    return list(available_wrappers())


def active_wrapper() -> str | None:
    """The name of the wrapper installed in this process, or ``None`` when export is unwrapped."""
    from harness.patching import installed

    patch = installed()
    return None if patch is None else patch.wrapper.name


def original_export() -> ExportFn:
    """torch.export.export itself, never the wrapper: the escape hatch for tests that must not be wrapped."""
    from harness.patching import real_export

    return real_export()
