"""benchmarks/ holds scripts, not a package: its folder goes on ``sys.path`` so that these tests import its
modules by name (``scale_projection``), as the scripts themselves do."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
