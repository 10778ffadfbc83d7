"""Live progress of a study run (rich), shown by `explorer run`: per subject done/failed/best, totals, trials/min.

Without a terminal (CI, logs, pipes) nothing is redrawn; one line is printed per finished subject.
"""

from __future__ import annotations

import math
import time
from typing import Any


class Progress:
    def __init__(self, name: str, objectives: list[str], directions: list[str], console: Any = None,
                 live: bool | None = None):
        from rich.console import Console

        self.name = name
        self.objective = objectives[0]
        self.maximise = directions[0] == "maximize"
        self.console = console or Console(stderr=True)
        self.live_enabled = self.console.is_terminal if live is None else live
        self.rows: dict[str, dict[str, Any]] = {}
        self.started = time.monotonic()
        self.run_trials = 0
        self._live = None

    def set_subject(self, subject: str, target: int, complete: int, failed: int, best: float | None) -> None:
        self.rows[subject] = {"target": target, "complete": complete, "failed": failed, "best": best,
                              "finished": False}

    def trial(self, subject: str, state: str, score: float | None) -> None:
        row = self.rows[subject]
        self.run_trials += 1
        if state == "COMPLETE":
            row["complete"] += 1
            if score is not None and math.isfinite(score):
                b = row["best"]
                if b is None or (score > b if self.maximise else score < b):
                    row["best"] = score
        else:
            row["failed"] += 1

    def finished(self, subject: str, note: str = "") -> None:
        row = self.rows[subject]
        row["finished"] = True
        if not self.live_enabled:
            best = "-" if row["best"] is None else f"{row['best']:.4f}"
            self.console.print(f"{self.name}/{subject}: {row['complete']} complete, {row['failed']} failed, "
                               f"best {self.objective} {best} {note}".rstrip(), highlight=False)

    def rate(self) -> float:
        minutes = (time.monotonic() - self.started) / 60.0
        return self.run_trials / minutes if minutes > 0 else 0.0

    def table(self):
        from rich.table import Table

        t = Table(title=f"study {self.name}", caption=f"{self.rate():.1f} trials/min")
        for col in ("subject", "done", "complete", "failed", f"best {self.objective}"):
            t.add_column(col, justify="left" if col == "subject" else "right")
        tot = {"done": 0, "target": 0, "complete": 0, "failed": 0}
        for sid, r in self.rows.items():
            done = r["complete"] + r["failed"]
            tot["done"] += done
            tot["target"] += r["target"]
            tot["complete"] += r["complete"]
            tot["failed"] += r["failed"]
            t.add_row(sid + (" ✓" if r["finished"] else ""), f"{done}/{r['target']}", str(r["complete"]),
                      str(r["failed"]), "-" if r["best"] is None else f"{r['best']:.4f}")
        t.add_row("total", f"{tot['done']}/{tot['target']}", str(tot["complete"]), str(tot["failed"]), "",
                  style="bold")
        return t

    def __enter__(self) -> "Progress":
        if self.live_enabled:
            from rich.live import Live

            self._live = Live(self.table(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.table())

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.table())
            self._live.__exit__(None, None, None)
            self._live = None


class NullProgress:
    """Shows nothing: the progress of a study run from the library (tests, benchmarks, the report)."""

    started = 0.0

    def set_subject(self, subject: str, target: int, complete: int, failed: int, best: float | None) -> None:
        pass

    def trial(self, subject: str, state: str, score: float | None) -> None:
        pass

    def finished(self, subject: str, note: str = "") -> None:
        pass

    def refresh(self) -> None:
        pass

    def __enter__(self) -> "NullProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        pass
