"""Bad run settings are refused by `explorer run` before anything starts: no study folder, no Ray."""

from __future__ import annotations

import copy
import sys

import pytest
import yaml

from explorer.cli import main
from study_configs import FAST


@pytest.mark.parametrize("field, value, words", [
    ("dt_ms", 0.3, ["simulation.dt_ms", "whole multiple", "dt values that divide"]),
    ("integrator", "rk4", ["simulation.integrator", "'euler'", "'heun'"]),
    ("bold_monitor", "nope", ["simulation.bold_monitor", "'balloon'", "'sample'"]),
    ("dtype", "float16", ["simulation.dtype", "'float64'", "'float32'"]),
])
def test_bad_run_setting_is_refused_before_any_actor_starts(tmp_path, capsys, field, value, words):
    data = copy.deepcopy(FAST)
    data["studies_dir"] = str(tmp_path / "studies")
    data["simulation"] = {**data["simulation"], field: value}
    if field == "dt_ms":   # 0.3 ms divides neither the 40 s duration nor the 2 s TR
        data["simulation"]["transient_s"] = 20
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    ray_loaded = "ray" in sys.modules
    assert main(["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and all(w in err for w in words), err
    assert not (tmp_path / "studies" / "fast").exists()        # nothing frozen, no Optuna study
    if not ray_loaded:                                          # the config failed before Ray was imported
        assert "ray" not in sys.modules
