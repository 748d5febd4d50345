"""``-n auto`` and small ``-k`` selections: pure estimate, and the plugin's decision in a subprocess."""

from __future__ import annotations

import json

import pytest

from harness.worker_count import SMALL_SELECTION_SECONDS, estimate, workers_for

DURATIONS = {
    "tests/export/test_dynamic_shapes.py::test_batch[2]": 4.0,
    "tests/export/test_dynamic_shapes.py::test_batch[3]": 6.0,
    "tests/export/test_models.py::test_mlp_dynamic_batch": 3.0,
    "tests/export/test_models.py::TestModels::test_cnn": 50.0,
}


def test_estimate_matches_like_dash_k_on_ids() -> None:
    assert estimate(DURATIONS, "dynamic") == estimate(DURATIONS, "DYNAMIC")
    assert estimate(DURATIONS, "dynamic").tests == 3 and estimate(DURATIONS, "dynamic").seconds == 13.0
    assert estimate(DURATIONS, "batch and not models").tests == 2
    assert estimate(DURATIONS, "TestModels").seconds == 50.0  # class names count, as in pytest
    assert estimate(DURATIONS, "test_models.py").tests == 2  # the module's file name too


def test_only_a_small_dash_k_selection_drops_the_workers() -> None:
    assert workers_for(DURATIONS, "dynamic", "")[0] == 0
    assert workers_for(DURATIONS, "cnn or dynamic", "")[0] is None  # 63 s: workers pay off
    assert workers_for(DURATIONS, "dynamic", "quick")[0] is None  # markers are not in the durations file
    assert workers_for(DURATIONS, "", "")[0] is None
    assert workers_for({}, "dynamic", "")[0] is None
    assert workers_for(DURATIONS, "not (", "")[0] is None  # pytest reports a bad -k itself
    assert SMALL_SELECTION_SECONDS > 13.0


@pytest.mark.parametrize(("keyword", "workers"), [("small", False), ("big", True)])
def test_plugin_decides_from_the_runs_stored_durations(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, keyword: str, workers: bool
) -> None:
    monkeypatch.delenv("EXPORT_WRAPPER", raising=False)
    pytester.makepyfile(test_sel="def test_small():\n    pass\n\ndef test_big():\n    pass\n")
    (pytester.path / "durations").mkdir()
    (pytester.path / "durations" / "strict.json").write_text(
        json.dumps({"test_sel.py::test_small": 0.5, "test_sel.py::test_big": 600.0})
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--export-wrapper", "strict", "-n", "auto", "-k", keyword
    )
    result.assert_outcomes(passed=1)
    text = result.stdout.str()
    assert ("bringing up nodes" in text or "created: " in text) is workers
    assert ("-n auto runs without workers: -k 'small' picks 1 stored tests" in text) is (not workers)
