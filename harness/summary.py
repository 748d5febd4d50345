"""Count what the wrapper did with each program and word the end-of-run line."""

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

    def add(self, outcomes: Iterable[str | None]) -> None:
        for stage in outcomes:
            if stage is None:
                self.transformed += 1
            else:
                self.broken[stage] += 1

    def line(self, wrapper: str, verb: str) -> str:
        """``export wrapper serdes_strict: 412 programs round-tripped, 3 failed (deserialize: 3)``."""
        export_errors = self.broken.get(EXPORT_STAGE, 0)
        stage_failures = {s: n for s, n in sorted(self.broken.items()) if s != EXPORT_STAGE}
        failed = sum(stage_failures.values())
        text = f"export wrapper {wrapper}: {self.transformed} programs {verb}, {failed} failed"
        if stage_failures:
            text += " (" + ", ".join(f"{s}: {n}" for s, n in stage_failures.items()) + ")"
        if export_errors:
            text += f"; {export_errors} raised in torch.export.export itself"
        return text
