"""Reduced Wong-Wang excitatory-inhibitory model (Deco et al. 2014, J Neurosci 34:7886).

Equations, units and constants as TVB's ``ReducedWongWangExcInh`` (time in ms; S dimensionless;
currents in nA; H in Hz; ``gamma`` given as in the paper and scaled by 1e-3 per ms)::

    x_E = w_plus J_NMDA S_E - J_I S_I + W_E I_0 + G J_NMDA sum_j W_ij S_E,j(t - tau_ij)
    x_I = J_NMDA S_E - S_I + W_I I_0
    H(x) = (a x - b) / (1 - exp(-d (a x - b)))
    dS_E/dt = -S_E / tau_E + (1 - S_E) gamma_E H(x_E) / 1000
    dS_I/dt = -S_I / tau_I + gamma_I H(x_I) / 1000

S_E and S_I are clamped to [0, 1] after every step, as TVB does. Matches TVB with
``coupling.Linear(a=1, b=0)``, ``lamda=0`` and ``I_ext=0``.
Noise: ``dS = f dt + sqrt(dt) sigma N(0, 1)`` on S_E and S_I, dt in ms (Deco 2014 / TVB
additive convention with sigma per sqrt(ms); TVB's ``nsig`` equals sigma**2 / 2).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from explorer.models.base import FicSpec, Model, Param
from explorer.models.vecmath import flt, vexp

PARAMS = (
    Param("a_E", 310.0, 250.0, 370.0, "nC^-1", "excitatory gain of the input-output function", 0.0),
    Param("b_E", 125.0, 100.0, 150.0, "Hz", "excitatory threshold of the input-output function"),
    Param("d_E", 0.16, 0.1, 0.2, "s", "excitatory curvature of the input-output function", 1e-6),
    Param("tau_E", 100.0, 50.0, 150.0, "ms", "NMDA decay time constant (S_E)", 1e-6),
    Param("gamma_E", 0.641, 0.4, 0.9, "1", "excitatory kinetic parameter (x 1e-3 per ms)", 0.0),
    Param("a_I", 615.0, 500.0, 700.0, "nC^-1", "inhibitory gain of the input-output function", 0.0),
    Param("b_I", 177.0, 150.0, 200.0, "Hz", "inhibitory threshold of the input-output function"),
    Param("d_I", 0.087, 0.05, 0.12, "s", "inhibitory curvature of the input-output function", 1e-6),
    Param("tau_I", 10.0, 5.0, 20.0, "ms", "GABA decay time constant (S_I)", 1e-6),
    Param("gamma_I", 1.0, 0.5, 1.5, "1", "inhibitory kinetic parameter (x 1e-3 per ms)", 0.0),
    Param("W_E", 1.0, 0.5, 1.5, "1", "scaling of the external input to E", 0.0),
    Param("W_I", 0.7, 0.4, 1.0, "1", "scaling of the external input to I", 0.0),
    Param("I_0", 0.382, 0.2, 0.5, "nA", "effective external input current", 0.0),
    Param("J_NMDA", 0.15, 0.1, 0.3, "nA", "excitatory synaptic coupling", 0.0),
    Param("w_plus", 1.4, 1.0, 2.0, "1", "local excitatory recurrence", 0.0),
    Param("J_I", 1.0, 0.5, 2.0, "nA", "local inhibitory (feedback) coupling", 0.0, per_region=True),
    Param("G", 0.5, 0.0, 2.0, "1", "global coupling scaling of the long-range input", 0.0, per_region=False),
)
#: rows of the [param, region, batch] array that dfun reads, looked up by name in PARAMS (numba
#: compiles them in as constants); tests/models/test_model_contract.py pins them to MODEL.index(name)
_ROW = {p.name: k for k, p in enumerate(PARAMS)}
(A_E, B_E, D_E, TAU_E, GAMMA_E, A_I, B_I, D_I, TAU_I, GAMMA_I, W_E, W_I, I_0, J_N, W_P, J_I, G) = (
    _ROW[name] for name in ("a_E", "b_E", "d_E", "tau_E", "gamma_E", "a_I", "b_I", "d_I", "tau_I", "gamma_I",
                            "W_E", "W_I", "I_0", "J_NMDA", "w_plus", "J_I", "G"))


@njit(inline="always", error_model="numpy")
def transfer(x: float, a: float, b: float, d: float) -> float:
    """H(x) = (a x - b) / (1 - exp(-d (a x - b))) in Hz; near a x = b its limit (1/d)(1 + d y / 2).

    One division per call (the near branch is a select on numerator and denominator). Computed in
    the float type of ``x``; "near" is ``|d y| < 1e-6`` in float64, ``< 1e-2`` in float32 (where
    the cancellation in ``1 - exp(-d y)`` and the limit's error, (d y)^2 / 12, are both ~1e-5).
    """
    y = a * x - b
    dy = d * y
    near = abs(dy) < (flt(1e-2, x) if isinstance(x, np.float32) else flt(1e-6, x))
    num = flt(1.0, x) if near else y
    den = d * (flt(1.0, x) - flt(0.5, x) * dy) if near else flt(1.0, x) - vexp(-dy)
    return num / den


@njit(error_model="numpy")
def dfun(x, i, c, p, wsum_i, dx, B):
    for b in range(B):
        se = x[0, i, b]
        si = x[1, i, b]
        jn = p[J_N, i, b]
        jnse = jn * se
        lr = p[G, i, b] * jn * c[0, b]
        xe = p[W_P, i, b] * jnse - p[J_I, i, b] * si + p[W_E, i, b] * p[I_0, i, b] + lr
        xi = jnse - si + p[W_I, i, b] * p[I_0, i, b]
        he = transfer(xe, p[A_E, i, b], p[B_E, i, b], p[D_E, i, b])
        hi = transfer(xi, p[A_I, i, b], p[B_I, i, b], p[D_I, i, b])
        dx[0, b] = -se / p[TAU_E, i, b] + (flt(1.0, se) - se) * he * (p[GAMMA_E, i, b] * flt(1e-3, se))
        dx[1, b] = -si / p[TAU_I, i, b] + hi * (p[GAMMA_I, i, b] * flt(1e-3, si))


MODEL = Model(
    name="rww_ei",
    doc="Reduced Wong-Wang E-I model (Deco 2014; TVB ReducedWongWangExcInh). Time in ms.",
    params=PARAMS,
    states=("S_E", "S_I"),
    coupled=0,
    dfun=dfun,
    coupling="linear",
    noise_states=(0, 1),
    bold_state=0,
    bounds=((0.0, 1.0), (0.0, 1.0)),
    clamp=((0.0, 1.0), (0.0, 1.0)),
    init=((0.0, 0.2), (0.0, 0.2)),
    time_unit_ms=1.0,
    noise_doc="additive on S_E and S_I: sqrt(dt_ms) * sigma * N(0,1) (sigma per sqrt(ms)); e.g. 0.01",
    references=("Deco et al. 2014, J Neurosci 34:7886", "TVB ReducedWongWangExcInh"),
    fic=FicSpec(param="J_I", solver="explorer.models.fic:fic_inhibition"),
)
