"""Small, fast study configs for the runner and end-to-end tests."""

from __future__ import annotations

import copy
from pathlib import Path

from explorer.config import parse_config

#: a fast study: Hopf on demo subjects, 40 s simulated at dt 1 ms, FCD window 10 TRs
FAST = {
    "name": "fast",
    "cohort": {"source": "demo", "subjects": ["NAP_001", "NAP_002"], "features": {"fcd_window": 10}},
    "model": "hopf",
    "params": {"free": {"G": {"low": 0.1, "high": 2.0}, "a": {"low": -0.1, "high": 0.05}}},
    "simulation": {"duration_s": 40, "dt_ms": 1.0, "transient_s": 0, "noise_sigma": 0.02, "bold_tr_s": 2.0},
    "trials": 4,
    "ray": {"actors": 2, "batch_size": 2},
}


def fast_config(tmp_path: Path, **changes):
    """FAST with top-level ``changes`` (nested keys merged one level deep), studies under tmp_path."""
    data = copy.deepcopy(FAST)
    data["studies_dir"] = str(tmp_path / "studies")
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return parse_config(data)


