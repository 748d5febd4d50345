"""The built-in export wrappers: drop-ins for ``torch.export.export`` that transform the result.

This module knows torch (imported lazily, inside the stages) and nothing of pytest.
Each wrapper either returns a transformed ``ExportedProgram`` or raises
:class:`~harness.errors.ExportWrapperError` naming itself and the stage that broke;
there is no fallback to the untransformed program.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import ExportWrapperError, stage_error

if TYPE_CHECKING:
    from torch.export import ExportedProgram
    from torch.nn import Module

__tracebackhide__ = True
"""pytest leaves this module's frames out of tracebacks (`--full-trace` shows them)."""

ExportFn = Callable[..., "ExportedProgram"]
"""The signature of ``torch.export.export``: (mod, args, kwargs=None, **options)."""


@dataclass
class WrapperCall:
    """One call of a wrapper: what the test passed, the export to call, and stage naming.

    Transforms receive this object so that they never see (or call) the patched
    ``torch.export.export``, and so that every stage error is named the same way.
    ``original_export`` is torch's export as the patch hands it over (the patch times it
    and shows the first program to observers; see :mod:`harness.patching`).
    """

    wrapper: str
    original_export: ExportFn
    mod: Module
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] | None
    options: dict[str, Any] = field(default_factory=dict)

    def export(self, **overrides: Any) -> ExportedProgram:
        """Run the original export with the caller's arguments; errors pass through unchanged."""
        return self.original_export(self.mod, self.args, self.kwargs, **{**self.options, **overrides})

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Name the stage in any error raised inside the block, keeping torch's type and chaining the cause."""
        __tracebackhide__ = True
        try:
            yield
        except ExportWrapperError:
            raise
        except Exception as exc:
            raise stage_error(self.wrapper, name, exc) from exc


Transform = Callable[[WrapperCall], "ExportedProgram"]


@dataclass(frozen=True)
class Wrapper:
    """A registry entry: a name, a one-line description and the transform it applies.

    ``verb`` fills the end-of-run summary ("412 programs round-tripped").
    ``pytorch_xfail_attr`` is the function attribute PyTorch's in-tree export tests set
    to mark an expected failure under the equivalent variant; ``pytorch_suffix`` is the
    suffix PyTorch's generated wrapper files append to test names for that variant
    (``--pytorch-compat`` shows it to tests through ``self._testMethodName``), and
    ``pytorch_class_prefix`` the prefix of the class those files generate for it
    (``SerDesExport`` + ``TestExport``).
    """

    name: str
    description: str
    transform: Transform
    verb: str = "exported"
    tags: tuple[str, ...] = ()
    pytorch_xfail_attr: str | None = None
    pytorch_suffix: str | None = None
    pytorch_class_prefix: str | None = None


Stage = Callable[[WrapperCall, "ExportedProgram"], "ExportedProgram"]
"""What a wrapper does to the program after the first export."""


def _unchanged(call: WrapperCall, program: ExportedProgram) -> ExportedProgram:
    return program


def _save_load(call: WrapperCall, program: ExportedProgram) -> ExportedProgram:
    import torch.export

    buffer = io.BytesIO()
    with call.stage("serialize"):
        torch.export.save(program, buffer)
    buffer.seek(0)
    with call.stage("deserialize"):
        return torch.export.load(buffer)


def _cpp_roundtrip(call: WrapperCall, program: ExportedProgram) -> ExportedProgram:
    import torch._C._export as cpp_export
    from torch._export.serde import serialize as serde

    with call.stage("serialize"):
        artifact = serde.serialize(program)
    with call.stage("cpp_roundtrip"):
        cpp_program = cpp_export.deserialize_exported_program(artifact.exported_program.decode("utf-8"))
        payload = cpp_export.serialize_exported_program(cpp_program)
        artifact = dataclasses.replace(artifact, exported_program=payload.encode("utf-8"))
    with call.stage("deserialize"):
        deserialized: ExportedProgram = serde.deserialize(artifact)
    return deserialized


def positional_dynamic_shapes(
    mod: Module, args: tuple[Any, ...], kwargs: Mapping[str, Any] | None, dynamic_shapes: Any
) -> Any:
    """Turn a ``dynamic_shapes`` dict keyed by argument name into a tuple in call order.

    ``ep.module()`` has a generated signature whose names need not match the
    original ``forward``; positions do.
    """
    if not isinstance(dynamic_shapes, dict):
        return dynamic_shapes
    bound = inspect.signature(mod.forward).bind(*args, **dict(kwargs or {}))
    return tuple(dynamic_shapes.get(name) for name in bound.arguments)


def _retrace(call: WrapperCall, program: ExportedProgram) -> ExportedProgram:
    with call.stage("retrace"):
        options = dict(call.options)
        if "dynamic_shapes" in options:
            options["dynamic_shapes"] = positional_dynamic_shapes(
                call.mod, call.args, call.kwargs, options["dynamic_shapes"]
            )
        return call.original_export(program.module(), call.args, call.kwargs, **options)


def _decompose(call: WrapperCall, program: ExportedProgram) -> ExportedProgram:
    with call.stage("decompose"):
        decomposed: ExportedProgram = program.run_decompositions({})
    return decomposed


def as_called(stage: Stage) -> Transform:
    """First export exactly as the caller asked, then ``stage``."""

    def transform(call: WrapperCall) -> ExportedProgram:
        return stage(call, call.export())

    return transform


def strict_by_default(stage: Stage) -> Transform:
    """``strict=True`` unless the caller chose, for the first export and every later one."""

    def transform(call: WrapperCall) -> ExportedProgram:
        strict_call = dataclasses.replace(call, options={"strict": True, **call.options})
        return stage(strict_call, strict_call.export())

    return transform


@contextmanager
def _deprecated_flags_quiet() -> Iterator[None]:
    """Drop torch's "is deprecated and does not do anything" warning for flags a wrapper sets on purpose."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is deprecated and does not do anything", category=FutureWarning)
        yield


def under_config(transform: Transform, module: str, **settings: Any) -> Transform:
    """Run ``transform`` with ``settings`` patched into the torch config module ``module``.

    The patch covers the first export, which is where these settings act, and is undone
    on return or error. A setting the installed torch does not have is an error of the
    ``configure`` stage, never silently skipped. torch 2.13 warns on every set of the
    deprecated no-op ``inline_inbuilt_nn_modules``; the wrapper sets it on purpose
    (PyTorch's variant does), so that one warning is dropped.
    """

    def patched(call: WrapperCall) -> ExportedProgram:
        import importlib

        with call.stage("configure"), _deprecated_flags_quiet():
            config = importlib.import_module(module)
            missing = sorted(name for name in settings if not hasattr(config, name))
            if missing:
                raise AttributeError(f"{module} has no setting(s) {missing}")
            patch = config.patch(**settings)
            patch.__enter__()
        try:
            return transform(call)
        finally:
            with _deprecated_flags_quiet():
                patch.__exit__(None, None, None)

    return patched


BUILTIN_WRAPPERS: tuple[Wrapper, ...] = (
    Wrapper(
        "non_strict",
        "plain torch.export.export as called (non-strict is torch 2.13's default)",
        as_called(_unchanged),
        tags=("non_strict", "plain"),
        pytorch_xfail_attr="_expected_failure_non_strict",
        pytorch_suffix="_nonstrict",
        pytorch_class_prefix="NonStrictExport",
    ),
    Wrapper(
        "strict",
        "plain export with strict=True unless the caller passed strict",
        strict_by_default(_unchanged),
        tags=("strict", "plain"),
        pytorch_xfail_attr="_expected_failure_strict",
        pytorch_suffix="_strict",
        pytorch_class_prefix="StrictExport",
    ),
    Wrapper(
        "serdes_strict",
        "strict export, then torch.export.save to memory and torch.export.load back",
        strict_by_default(_save_load),
        verb="round-tripped",
        tags=("strict", "serdes"),
        pytorch_xfail_attr="_expected_failure_serdes",
        pytorch_suffix="_serdes_strict",
        pytorch_class_prefix="SerDesExport",
    ),
    Wrapper(
        "serdes_non_strict",
        "export as called, then torch.export.save to memory and torch.export.load back",
        as_called(_save_load),
        verb="round-tripped",
        tags=("non_strict", "serdes"),
        pytorch_xfail_attr="_expected_failure_serdes_non_strict",
        pytorch_suffix="_serdes_nonstrict",
        pytorch_class_prefix="SerDesExportNonStrict",
    ),
    Wrapper(
        "cpp_serdes",
        "export as called, Python serializer, C++ deserialize+serialize, Python deserializer",
        as_called(_cpp_roundtrip),
        verb="round-tripped",
        tags=("non_strict", "serdes", "cpp"),
        pytorch_xfail_attr="_expected_failure_cpp_serdes",
        pytorch_suffix="_cpp_serdes",
        pytorch_class_prefix="CppSerdes",
    ),
    Wrapper(
        "retrace_strict",
        "strict export, then export ep.module() again with the same inputs and options",
        strict_by_default(_retrace),
        verb="retraced",
        tags=("strict", "retrace"),
        pytorch_xfail_attr="_expected_failure_retrace",
        pytorch_suffix="_retraceability_strict",
        pytorch_class_prefix="RetraceExport",
    ),
    Wrapper(
        "retrace_non_strict",
        "export as called, then export ep.module() again with the same inputs and options",
        as_called(_retrace),
        verb="retraced",
        tags=("non_strict", "retrace"),
        pytorch_xfail_attr="_expected_failure_retrace_non_strict",
        pytorch_suffix="_retraceability_nonstrict",
        pytorch_class_prefix="RetraceExportNonStrict",
    ),
    Wrapper(
        "run_decomp_strict",
        "strict export, then ep.run_decompositions({}) (training IR to inference IR)",
        strict_by_default(_decompose),
        verb="decomposed",
        tags=("strict", "decomp"),
        pytorch_xfail_attr="_expected_failure_training_ir_to_run_decomp",
        pytorch_suffix="_training_ir_to_decomp_strict",
        pytorch_class_prefix="TrainingIRToRunDecompExport",
    ),
    Wrapper(
        "run_decomp_non_strict",
        "export as called, then ep.run_decompositions({}) (training IR to inference IR)",
        as_called(_decompose),
        verb="decomposed",
        tags=("non_strict", "decomp"),
        pytorch_xfail_attr="_expected_failure_training_ir_to_run_decomp_non_strict",
        pytorch_suffix="_training_ir_to_decomp_nonstrict",
        pytorch_class_prefix="TrainingIRToRunDecompExportNonStrict",
    ),
    Wrapper(
        "strict_v2",
        "strict export through the new capture path (torch._export.config.use_legacy_dynamo_graph_capture=False)",
        under_config(
            strict_by_default(_unchanged), "torch._export.config", use_legacy_dynamo_graph_capture=False
        ),
        tags=("strict", "plain", "config"),
        pytorch_xfail_attr="_expected_failure_strict_v2",
        pytorch_suffix="_strict_export_v2",
        pytorch_class_prefix="StrictExportV2",
    ),
    Wrapper(
        "inline_and_install_strict",
        "strict export with torch._dynamo.config install_free_tensors=True, inline_inbuilt_nn_modules=True",
        under_config(
            strict_by_default(_unchanged),
            "torch._dynamo.config",
            install_free_tensors=True,
            inline_inbuilt_nn_modules=True,
        ),
        tags=("strict", "plain", "config"),
        pytorch_xfail_attr="_expected_failure_inline_and_install",
        pytorch_suffix="_inline_and_install_strict",
        pytorch_class_prefix="InlineAndInstallExport",
    ),
)
