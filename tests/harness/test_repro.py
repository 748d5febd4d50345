"""Repro bundles (``harness/repro``): written only for failures, bounded, each repro.py reproducing with plain torch.

The runs are real: pytest in a subprocess (pytester) under built-in wrappers on programs that hit real torch
2.13 bugs, and under deliberately broken wrappers (an entry-point plugin, installed the way pip leaves one)
that damage a program so that torch's own stage fails. Each bundle's ``repro.py`` then runs in a fresh
interpreter that cannot import the harness or the test suite (``-I -S``, site-packages put back without
their ``.pth`` files, so the editable install of the harness is gone), and must reproduce the same stage
and cause. The format pieces (folder names, the results field, the report links, the program dump) are
checked directly.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from harness import registry, repro
from harness.report import html as report_html
from harness.report.markdown import render_markdown
from harness.report.model import NAMED, Results
from harness.repro import bundle as bundle_module
from harness.repro import script
from harness.repro.dump import dump_program
from harness.results import Record, RunFile, load, merge, write

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

SITE_PACKAGES = [p for p in sys.path if p.rstrip("/").endswith("site-packages")]
PLAIN_TORCH = textwrap.dedent(
    f"""
    import importlib.util, runpy, sys
    sys.path.extend({SITE_PACKAGES!r})
    for name in ("harness", "tests"):
        if importlib.util.find_spec(name) is not None:
            sys.exit(f"{{name}} is importable: not a plain-torch interpreter")
    sys.argv = ["repro.py"]
    runpy.run_path("repro.py", run_name="__main__")
    """
)
"""Runs repro.py in its folder with torch importable and neither the harness nor the test suite."""
VERDICT = re.compile(r"^(REPRODUCED|NOT REPRODUCED|FAILED DIFFERENTLY|CANNOT REPRODUCE)(?: stage=(\S+):)? ?(.*)$")


def run_repro(folder: Path) -> tuple[int, str, str, str]:
    """(exit status, verdict, stage, cause) of ``python repro.py`` with plain torch; the output on failure."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PLAIN_TORCH],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder)},
    )
    lines = [line for line in done.stdout.splitlines() if VERDICT.match(line)]
    assert lines, f"no verdict from {folder}/repro.py (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    match = VERDICT.match(lines[-1])
    assert match is not None
    return done.returncode, match[1], match[2] or "", match[3]


def same_cause(a: str, b: str) -> bool:
    """Equal but for numbers and addresses (a column in a JSON error, an object id)."""

    def normalized(text: str) -> str:
        return re.sub(r"0x[0-9a-fA-F]+|\d+", "#", text.strip())

    return normalized(a) == normalized(b)


def bundles_in(directory: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(directory.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def assert_reproduces(folder: Path) -> dict[str, Any]:
    """repro.py exits 1 with REPRODUCED, the recorded stage and the recorded cause; the bundle's description."""
    described: dict[str, Any] = json.loads((folder / "bundle.json").read_text())
    status, verdict, stage, cause = run_repro(folder)
    assert (verdict, status) == ("REPRODUCED", 1), f"{folder.name}: {verdict} {stage} {cause}"
    assert stage == described["stage"], folder.name
    assert same_cause(cause, described["cause"]), f"{folder.name}: {cause!r} != {described['cause']!r}"
    return described


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("EXPORT_WRAPPER", raising=False)
    return pytester


# ------------------------------------------------------------------------------------------- real torch bugs

REAL_BUGS = """
    import torch
    from torch.export import Dim, export


    class Max(torch.nn.Module):
        def forward(self, x):
            return torch.max(x, dim=1)


    class GradRegion(torch.nn.Module):
        def forward(self, x):
            with torch.no_grad():
                y = x * 2
                with torch.enable_grad():
                    z = y.sin()
            return y + z


    class RunningMax(torch.nn.Module):
        def forward(self, x):
            return torch.maximum(torch.full(x.shape, float("-inf")), x) + 1


    class VarArgs(torch.nn.Module):
        def forward(self, *xs):
            return sum(xs[1:], xs[0])


    class HalfUsed(torch.nn.Module):
        def forward(self, x):
            return x.relu(), x.sum()


    class IgnoresSecond(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sub = HalfUsed()

        def forward(self, x):
            a, _ = self.sub(x)
            return a * 2


    def test_max_output():
        export(Max(), (torch.randn(2, 3),))


    def test_grad_region():
        export(GradRegion(), (torch.randn(3),))


    def test_negative_infinity():
        x = torch.randn(3)
        ep = export(RunningMax(), (x,))
        torch.testing.assert_close(ep.module()(x), RunningMax()(x))


    def test_var_args():
        d = Dim("d", max=8)
        export(VarArgs(), (torch.randn(3), torch.randn(3), torch.randn(3)), dynamic_shapes={"xs": ({0: d},) * 3})


    def test_unused_preserved_output():
        export(IgnoresSecond(), (torch.randn(3, 4),), preserve_module_call_signature=("sub",))
"""
REAL_CASES = {
    "test_max_output__serdes_strict": "serialize",
    "test_grad_region__serdes_non_strict": "deserialize",
    "test_grad_region__cpp_serdes": "deserialize",
    "test_negative_infinity__cpp_serdes": "test",
    "test_var_args__retrace_non_strict": "retrace",
    "test_unused_preserved_output__run_decomp_non_strict": "decompose",
}
"""Bundle (after ``test_real.py__``) and the stage torch 2.13 fails at, one per stage built-in wrappers can fail."""


def test_real_torch_bugs_leave_bundles_that_reproduce_with_plain_torch(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_real=REAL_BUGS)
    wrappers = sorted({case.split("__")[1] for case in REAL_CASES})
    keyword = " or ".join(f"({case.split('__')[0]} and {case.split('__')[1]})" for case in REAL_CASES)
    result = tester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--export-wrapper", ",".join(wrappers), "-k", keyword, "--repro-dir=repro"
    )
    result.assert_outcomes(failed=len(REAL_CASES))
    result.stdout.fnmatch_lines([f"*repro bundles: {len(REAL_CASES)} written to repro*"])
    # the failure's first lines name wrapper, stage, torch's cause and the bundle
    result.stdout.fnmatch_lines(
        [
            "E   export wrapper 'retrace_non_strict' failed at stage 'retrace'",
            "E   cause: UserError: Detected mismatch between the structure of `inputs` and `dynamic_shapes`*",
            "E   repro bundle: repro/test_real.py__test_var_args__retrace_non_strict (run its repro.py *)",
        ]
    )
    found = bundles_in(tester.path / "repro")
    assert set(found) == {f"test_real.py__{case}" for case in REAL_CASES}
    for case, stage in REAL_CASES.items():
        folder = found[f"test_real.py__{case}"]
        described = assert_reproduces(folder)
        assert described["stage"] == stage
        error = (folder / "error.txt").read_text()
        assert f"stage:    {stage}" in error and "torch 2.13" in error and "Traceback" in error
    serialize = found["test_real.py__test_max_output__serdes_strict"]
    assert not (serialize / "program.pt2").exists()  # torch cannot save it: printed, and dumped as data
    assert "torch.return_types.max" in (serialize / "program.txt").read_text()
    assert (serialize / "program.fx.pt").exists()
    mismatch = found["test_real.py__test_negative_infinity__cpp_serdes"]
    assert {"program.pt2", "transformed.pt2", "inputs.pt", "first_outputs.pt"} <= {p.name for p in mismatch.iterdir()}


# ------------------------------------------------------------------------------------------- broken wrappers

BROKEN_WRAPPERS = '''
    """Wrappers that damage the first program the way a buggy transformation could, then run torch's own stage."""

    import torch

    from harness import Wrapper, as_called
    from harness.wrappers import _cpp_roundtrip, _decompose, _retrace, _save_load


    def _first_call(program):
        return next(n for n in program.graph.nodes if n.op == "call_function")


    def _false_assert(program):
        output = next(n for n in program.graph.nodes if n.op == "output")
        with program.graph.inserting_before(output):
            node = program.graph.call_function(torch.ops.aten._assert_scalar.default, (False, "broken on purpose"))
            node.meta["val"] = None
        program.graph_module.recompile()


    def unjsonable_custom_meta(call, program):
        _first_call(program).meta["custom"] = {"tags": {1, 2}}
        return _save_load(call, program)


    def comma_in_module_path(call, program):
        _first_call(program).meta["nn_module_stack"] = {"L__self___lin": ("lin,extra", "torch.nn.Linear")}
        return _save_load(call, program)


    def lone_surrogate(call, program):
        _first_call(program).meta["stack_trace"] = "File \\ud800"
        return _cpp_roundtrip(call, program)


    def retrace_false_assert(call, program):
        _false_assert(program)
        return _retrace(call, program)


    def decompose_false_assert(call, program):
        _false_assert(program)
        return _decompose(call, program)


    def decompose_then_off_by_one(call, program):
        decomposed = _decompose(call, program)
        add = next(n for n in decomposed.graph.nodes if n.target is torch.ops.aten.add.Tensor)
        add.args = (add.args[0], add.args[1] + 1)
        decomposed.graph_module.recompile()
        return decomposed


    def _wrapper(name, stage, tags):
        return Wrapper(name, f"broken on purpose: {stage.__name__}", as_called(stage), tags=("non_strict", *tags))


    broken_serialize = _wrapper("broken_serialize", unjsonable_custom_meta, ("serdes",))
    broken_deserialize = _wrapper("broken_deserialize", comma_in_module_path, ("serdes",))
    broken_cpp = _wrapper("broken_cpp", lone_surrogate, ("serdes", "cpp"))
    broken_retrace = _wrapper("broken_retrace", retrace_false_assert, ("retrace",))
    broken_decompose = _wrapper("broken_decompose", decompose_false_assert, ("decomp",))
    broken_check = _wrapper("broken_check", decompose_then_off_by_one, ("decomp",))
'''
BROKEN = {
    "broken_serialize": "serialize",
    "broken_deserialize": "deserialize",
    "broken_cpp": "cpp_roundtrip",
    "broken_retrace": "retrace",
    "broken_decompose": "decompose",
    "broken_check": "test",
}
MODEL_TEST = """
    import torch
    from torch.export import export


    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(x).sin() + 1


    def test_model():
        torch.manual_seed(0)
        model, x = Model(), torch.randn(2, 3)
        ep = export(model, (x,))
        torch.testing.assert_close(ep.module()(x), model(x))
"""


def install_broken_wrappers(tester: pytest.Pytester) -> None:
    """The plugin as pip installs it: module plus dist-info with one entry point per wrapper."""
    tester.makepyfile(broken_wrappers=BROKEN_WRAPPERS)
    info = tester.path / "broken_wrappers-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken_wrappers\nVersion: 0.1\n")
    lines = [f"{name} = broken_wrappers:{name}" for name in BROKEN]
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n" + "\n".join(lines) + "\n")


def test_broken_wrappers_under_xdist_leave_one_bundle_each_that_reproduces(tester: pytest.Pytester) -> None:
    install_broken_wrappers(tester)
    tester.makepyfile(test_model=MODEL_TEST)
    result = tester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--export-wrapper", ",".join(BROKEN), "-n", "2",
        "--repro-dir=repro", "--results-dir=results",
    )
    result.assert_outcomes(failed=len(BROKEN))
    result.stdout.fnmatch_lines([f"*repro bundles: {len(BROKEN)} written to repro*"])
    result.stdout.fnmatch_lines(
        [
            "E   export wrapper 'broken_check' transformed the program, then the test's own check failed",
            "E   cause: AssertionError: Tensor-likes are not close!",
            "E   repro bundle: repro/test_model.py__test_model__broken_check (run its repro.py with plain torch)",
        ]
    )
    found = bundles_in(tester.path / "repro")
    assert set(found) == {f"test_model.py__test_model__{name}" for name in BROKEN}
    [results_file] = (tester.path / "results").glob("*.json")
    records = {r.wrapper: r for r in load(results_file).records}
    for name, stage in BROKEN.items():
        folder = found[f"test_model.py__test_model__{name}"]
        assert records[name].bundle == f"repro/{folder.name}"
        described = assert_reproduces(folder)
        assert (described["wrapper"], described["stage"]) == (name, stage)
    assert not list((tester.path / "repro").glob(".*")), "the run's slot files and temporary folders are gone"


# ------------------------------------------------------------------------------------------- when, how many

WHEN_TESTS = """
    import os

    import pytest
    import torch
    from torch.export import export

    from harness import ExportWrapperError


    class Max(torch.nn.Module):
        def forward(self, x):
            return torch.max(x, dim=1)


    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2


    def test_passes():
        export(Double(), (torch.randn(3),))


    @pytest.mark.xfail_under("serdes_strict", reason="torch.return_types.max", raises=ExportWrapperError)
    def test_known_bug():
        export(Max(), (torch.randn(2, 3),))


    @pytest.mark.parametrize("n", [2, 3])
    def test_bug(n):
        module = Double() if os.environ.get("FIXED") else Max()
        export(module, (torch.randn(n, 3),))
"""


def test_bundles_only_for_unexpected_failures_capped_xfail_on_request_stale_removed(
    tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    tester.makepyfile(test_when=WHEN_TESTS)
    args = ("-p", "no:cacheprovider", "--export-wrapper", "serdes_strict", "--repro-dir=repro")
    directory = tester.path / "repro"

    capped = tester.runpytest_subprocess(*args, "--repro-max=1")
    capped.assert_outcomes(passed=1, failed=2, xfailed=1)
    capped.stdout.fnmatch_lines(
        [
            "*repro bundles: 1 written to repro*",
            "*repro bundles: 1 not written: the cap of 1 per run was reached (--repro-max N raises it)*",
        ]
    )
    assert len(bundles_in(directory)) == 1  # neither the pass nor the expected failure left one

    full = tester.runpytest_subprocess(*args)
    full.assert_outcomes(passed=1, failed=2, xfailed=1)
    assert set(bundles_in(directory)) == {f"test_when.py__test_bug_{n}__serdes_strict" for n in (2, 3)}

    known = tester.runpytest_subprocess(*args, "--repro-xfail", "-k", "known_bug")
    known.assert_outcomes(xfailed=1)
    known.stdout.fnmatch_lines(["*repro bundles: 1 written to repro*"])
    described = json.loads((directory / "test_when.py__test_known_bug__serdes_strict" / "bundle.json").read_text())
    assert (described["outcome"], described["stage"]) == ("xfailed", "serialize")
    assert "--repro-xfail" in (directory / "test_when.py__test_known_bug__serdes_strict" / "error.txt").read_text()

    monkeypatch.setenv("FIXED", "1")  # test_bug passes now: its bundles go, the other tests' stay
    fixed = tester.runpytest_subprocess(*args, "-k", "test_bug")
    fixed.assert_outcomes(passed=2)
    assert "repro bundles" not in fixed.stdout.str()
    assert set(bundles_in(directory)) == {"test_when.py__test_known_bug__serdes_strict"}


def test_without_the_option_nothing_is_captured_or_written(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        test_probe="""
        import torch
        from torch.export import export

        from harness.patching import installed


        class Max(torch.nn.Module):
            def forward(self, x):
                return torch.max(x, dim=1)


        def test_fails():
            assert not installed().capturing
            export(Max(), (torch.randn(2, 3),))
        """
    )
    result = tester.runpytest_subprocess("-p", "no:cacheprovider", "--export-wrapper", "serdes_strict")
    result.assert_outcomes(failed=1)
    assert "repro bundle" not in result.stdout.str()
    assert not list(tester.path.rglob("bundle.json"))


# ------------------------------------------------------------------------------------------- the pieces


def test_folder_names_are_safe_bounded_and_distinct() -> None:
    name = repro.folder_name("tests/export/test_x.py::test_op[add-sample0 (a/b)]", "cpp_serdes")
    assert name == "tests_export_test_x.py__test_op_add-sample0_a_b__cpp_serdes"
    long_a = repro.folder_name("t.py::test_" + "x" * 300 + "[a]", "serdes_strict")
    long_b = repro.folder_name("t.py::test_" + "x" * 300 + "[b]", "serdes_strict")
    assert len(long_a) <= repro.MAX_NAME and long_a.endswith("__serdes_strict") and long_a != long_b


def test_mode_follows_tags_then_stage() -> None:
    def failure(stage: str, tags: tuple[str, ...]) -> bundle_module.Failure:
        return bundle_module.Failure("t", "t", "w", tags, stage, "", "call", "failed", RuntimeError(), None)  # type: ignore[arg-type]

    assert bundle_module.mode_of(failure("serialize", ("serdes", "cpp"))) == "cpp_roundtrip"
    assert bundle_module.mode_of(failure("serialize", ("serdes",))) == "save_load"
    assert bundle_module.mode_of(failure("cpp_roundtrip", ())) == "cpp_roundtrip"
    assert bundle_module.mode_of(failure("retrace", ())) == "retrace"
    assert bundle_module.mode_of(failure("test", ("decomp",))) == "compare"
    assert bundle_module.mode_of(failure("lower", ())) == "unsupported"
    assert bundle_module.transform_of(("decomp",), "test") == "decompose"


def test_repro_script_template_keeps_its_placeholder_and_imports_no_harness() -> None:
    text = bundle_module.script_for({"stage": "decompose", "cause": "RuntimeError: x"})
    compile(text, "repro.py", "exec")
    assert "BUNDLE: dict[str, Any] = {'stage': 'decompose', 'cause': 'RuntimeError: x'}" in text
    assert not re.search(r"^\s*(from|import) (harness|tests)\b", text, re.MULTILINE)


def test_record_bundle_is_optional_in_results_files(tmp_path: Path) -> None:
    plain, with_bundle = Record("a.py::test_x", "cpp_serdes"), Record("a.py::test_y", "cpp_serdes", "failed")
    with_bundle.bundle = "reports/repro/a.py__test_y__cpp_serdes"
    assert "bundle" not in plain.to_json()
    path = tmp_path / "r.json"
    write(path, RunFile("cpp_serdes", ["cpp_serdes"], [plain, with_bundle]))
    assert [r.bundle for r in load(path).records] == [None, "reports/repro/a.py__test_y__cpp_serdes"]


def _report_with_bundle() -> Results:
    failed = Record("a.py::test_y", "cpp_serdes", "failed", "cpp_roundtrip", "RuntimeError: parse error")
    failed.bundle = "reports/repro/a.py__test_y__cpp_serdes"
    run = RunFile("cpp_serdes", ["cpp_serdes"], [Record("a.py::test_x", "cpp_serdes"), failed])
    return Results(merge([run]), [], NAMED)


def test_markdown_names_the_bundle_of_each_failure() -> None:
    text = render_markdown(_report_with_bundle())
    assert "- `a.py::test_y` (cpp_serdes: repro bundle `reports/repro/a.py__test_y__cpp_serdes`)" in text


def test_html_links_red_cells_to_their_bundle_relative_to_the_page() -> None:
    page = report_html.render_html(_report_with_bundle(), links_from="reports")
    data = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S)[1])  # type: ignore[index]
    assert data["bundles"] == [["reports/repro/a.py__test_y__cpp_serdes", "repro/a.py__test_y__cpp_serdes/"]]
    cells = {tuple(c[:2]): c for c in data["cells"]}
    tests, wrappers = data["tests"], data["wrappers"]
    assert cells[(tests.index("a.py::test_y"), wrappers.index("cpp_serdes"))][7] == 0
    assert cells[(tests.index("a.py::test_x"), wrappers.index("cpp_serdes"))][7] == -1
    assert report_html.bundle_href("/abs/x y", None) == "file:///abs/x%20y/"


class _Cond(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)
        out: torch.Tensor = torch.cond(y.sum() > 0, lambda t: t.sin(), lambda t: t.cos(), (y,)) + x.shape[0]
        return out


def test_program_dump_rebuilds_a_program_torch_saves_and_runs_the_same(tmp_path: Path) -> None:
    """The dump behind program.fx.pt: dynamic sizes, a cond subgraph, parameters; rebuilt without the serializer."""
    x = torch.randn(4, 3)
    batch = torch.export.Dim("batch", min=2, max=16)
    program = torch.export.export(_Cond(), (x,), dynamic_shapes=({0: batch},))
    path = tmp_path / "program.fx.pt"
    torch.save(dump_program(program), path)
    rebuilt = script.rebuild_program(torch.load(path, weights_only=False))
    torch.export.save(rebuilt, tmp_path / "rebuilt.pt2")
    loaded = torch.export.load(tmp_path / "rebuilt.pt2")
    other = torch.randn(7, 3)
    torch.testing.assert_close(loaded.module()(other), program.module()(other))
    assert str(loaded.range_constraints) == str(program.range_constraints)


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: apt-get install chromium (.ci/run does)")
def test_html_report_red_cell_opens_its_bundle_in_a_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import sync_playwright

    from harness.report import main

    monkeypatch.chdir(tmp_path)  # bundle paths are as the run named them, relative to where it ran
    folder = Path("reports/repro/a.py__test_y__cpp_serdes")
    folder.mkdir(parents=True)
    (folder / "error.txt").write_text("stage: cpp_roundtrip\n")
    write(Path("results/cpp.json"), _report_with_bundle().runs[0])
    assert main(["results", "--out", "reports"]) == 0
    page_path = (tmp_path / "reports" / "report.html").as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(page_path)
            link = page.locator("#rows td.c.o-failed a")
            assert link.count() == 1 and link.text_content() == "✗"
            assert link.evaluate("a => a.href") == (tmp_path / folder).as_uri() + "/"
            assert page.locator("#rows td.c.o-passed a").count() == 0
            page.locator("#rows td.c.o-failed").click(position={"x": 1, "y": 1})
            detail = page.locator("#detail")
            assert "bundle:   reports/repro/a.py__test_y__cpp_serdes" in (detail.text_content() or "")
            hrefs = detail.locator("a").evaluate_all("links => links.map(a => a.href)")
            assert hrefs[1] == (tmp_path / folder / "error.txt").as_uri()
            assert errors == []
        finally:
            browser.close()


class _Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


class _Max(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> Any:
        return torch.max(x, dim=1)


def test_capture_keeps_references_of_the_first_export_and_the_outcome() -> None:
    from harness.errors import ExportWrapperError
    from harness.patching import ExportPatch
    from harness.wrappers import BUILTIN_WRAPPERS

    patch = ExportPatch(next(w for w in BUILTIN_WRAPPERS if w.name == "serdes_strict"), torch.export.export)
    module, x = _Double(), torch.randn(3)
    patch.function(module, (x,))
    assert patch.drain_captures() == []  # off unless repro bundles are on
    patch.capturing = True
    program = patch.function(module, (x,))
    with pytest.raises(ExportWrapperError) as raised:
        patch.function(_Max(), (torch.randn(2, 3),))
    done, failed = patch.drain_captures()
    assert done.mod is module and done.args[0] is x and done.options == {"strict": True}
    assert done.transformed is program and done.first is not None and done.first is not program
    assert (done.error, done.stage) == (None, None)
    assert failed.error is raised.value and failed.stage == "serialize" and failed.transformed is None
    assert failed.first is not None
    assert patch.drain_captures() == []
