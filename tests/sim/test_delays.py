"""A pulse crosses a delayed edge in exactly round(L / v / dt) steps."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.models import MODELS
from explorer.models.arrays import param_array
from explorer.sim import run_batch
from explorer.sim.connectome import build_connectome


@pytest.mark.parametrize("length_mm,velocity,dt_ms", [(37.0, 5.0, 0.1), (37.04, 5.0, 0.1), (120.0, 20.0, 0.5),
                                                      (10.0, 2.0, 1.0), (0.0, 20.0, 0.1)])
def test_pulse_arrives_after_rounded_delay(length_mm, velocity, dt_ms):
    m = MODELS["hopf"]
    w = np.array([[0.0, 0.0], [1.0, 0.0]])  # region 1 receives from region 0
    ln = np.full((2, 2), length_mm)
    conn = build_connectome(w, ln, velocity, dt_ms)
    expected = int(round(length_mm / velocity / dt_ms))
    assert conn.max_delay == expected
    p = param_array(m, [{"a": -1.0, "f": 1.0, "G": 1.0}], 2)
    x0 = np.zeros((2, 2, 1))
    x0[0, 0, 0] = 1.0  # the pulse: region 0 starts displaced, region 1 at rest, empty history
    n = expected + 20
    out = run_batch(m, conn, p, x0, [0], n_steps=n, dt_ms=dt_ms, tavg_n=1, history="zero")
    x1 = out["tavg"][:, 0, 1, 0]  # sample k = state after step k
    first = int(np.argmax(x1 != 0.0))
    assert np.all(x1[:first] == 0.0)
    assert first == expected
