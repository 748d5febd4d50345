"""Count what the wrapper did with each program, and the warnings, and word the end-of-run lines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.errors import EXPORT_STAGE


@dataclass
class ProgramTally:
    """Outcomes of every program the wrapper saw: ``None`` for transformed, else the broken stage."""

    transformed: int = 0
    broken: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0
    """Stage failures in tests that failed; the others were expected (an xfail, or a test that wants the error)."""

    def add(self, outcomes: Iterable[str | None], *, test_failed: bool = False) -> None:
        for stage in outcomes:
            if stage is None:
                self.transformed += 1
            else:
                self.broken[stage] += 1
                if test_failed and stage != EXPORT_STAGE:
                    self.unexpected += 1

    def line(self, wrapper: str, verb: str) -> str:
        """``export wrapper serdes_strict: 412 programs round-tripped, 3 failed, all expected (deserialize: 3)``."""
        export_errors = self.broken.get(EXPORT_STAGE, 0)
        stage_failures = {s: n for s, n in sorted(self.broken.items()) if s != EXPORT_STAGE}
        failed = sum(stage_failures.values())
        text = f"export wrapper {wrapper}: {self.transformed} programs {verb}, {failed} failed"
        if failed:
            text += f", {self.unexpected} unexpected" if self.unexpected else ", all expected"
        if stage_failures:
            text += " (" + ", ".join(f"{s}: {n}" for s, n in stage_failures.items()) + ")"
        if export_errors:
            text += f"; {export_errors} raised in torch.export.export itself"
        return text


@dataclass
class WarningTally:
    """Warnings by category, for a run whose warnings summary is switched off (the nox sessions)."""

    categories: Counter[str] = field(default_factory=Counter)

    def add(self, category: str) -> None:
        self.categories[category] += 1

    def line(self) -> str:
        """``warnings: 170 (FutureWarning: 150, UserWarning: 20); -- -rw lists them``."""
        total = self.categories.total()
        by_category = ", ".join(f"{name}: {n}" for name, n in self.categories.most_common())
        return f"warnings: {total} ({by_category}); `-rw` (after `--` in a nox session) lists them"
