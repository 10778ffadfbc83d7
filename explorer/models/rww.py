"""Reduced Wong-Wang one-population model (Deco et al. 2013, J Neurosci 33:11239).

Time in ms, currents in nA, H in Hz, ``gamma`` as in the paper (scaled by 1e-3 per ms)::

    x = w J_N S + G J_N sum_j W_ij S_j(t - tau_ij) + I_0
    H(x) = (a x - b) / (1 - exp(-d (a x - b)))
    dS/dt = -S / tau_S + (1 - S) gamma H(x) / 1000

S is clamped to [0, 1] after every step. Noise: ``sqrt(dt_ms) * sigma * N(0, 1)`` on S.
"""

from __future__ import annotations

from numba import njit

from explorer.models.base import Model, Param
from explorer.models.rww_ei import transfer
from explorer.models.vecmath import flt

PARAMS = (
    Param("a", 270.0, 200.0, 340.0, "nC^-1", "gain of the input-output function", 0.0),
    Param("b", 108.0, 80.0, 140.0, "Hz", "threshold of the input-output function"),
    Param("d", 0.154, 0.1, 0.2, "s", "curvature of the input-output function", 1e-6),
    Param("gamma", 0.641, 0.4, 0.9, "1", "kinetic parameter (x 1e-3 per ms)", 0.0),
    Param("tau_S", 100.0, 50.0, 150.0, "ms", "NMDA decay time constant", 1e-6),
    Param("w", 0.9, 0.5, 1.2, "1", "local excitatory recurrence", 0.0),
    Param("J_N", 0.2609, 0.15, 0.35, "nA", "synaptic coupling", 0.0),
    Param("I_0", 0.3, 0.2, 0.4, "nA", "external input current", 0.0, per_region=True),
    Param("G", 0.3, 0.0, 1.0, "1", "global coupling scaling of the long-range input", 0.0, per_region=False),
)
A, B_, D, GAMMA, TAU, W, J_N, I_0, G = range(9)


@njit(error_model="numpy")
def dfun(x, i, c, p, wsum_i, dx, B):
    for b in range(B):
        s = x[0, i, b]
        jn = p[J_N, i, b]
        xx = p[W, i, b] * jn * s + p[G, i, b] * jn * c[0, b] + p[I_0, i, b]
        h = transfer(xx, p[A, i, b], p[B_, i, b], p[D, i, b])
        dx[0, b] = -s / p[TAU, i, b] + (flt(1.0, s) - s) * h * (p[GAMMA, i, b] * flt(1e-3, s))


MODEL = Model(
    name="rww",
    doc="Reduced Wong-Wang one-population model (Deco 2013). Time in ms.",
    params=PARAMS,
    states=("S",),
    coupled=0,
    dfun=dfun,
    coupling="linear",
    noise_states=(0,),
    bold_state=0,
    bounds=((0.0, 1.0),),
    clamp=((0.0, 1.0),),
    init=((0.0, 0.2),),
    time_unit_ms=1.0,
    noise_doc="additive on S: sqrt(dt_ms) * sigma * N(0,1) (sigma per sqrt(ms)); e.g. 0.01",
    references=("Deco et al. 2013, J Neurosci 33:11239",),
)
