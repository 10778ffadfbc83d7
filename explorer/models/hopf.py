"""Stuart-Landau (Hopf normal form) oscillators, diffusively coupled (Deco et al. 2017, Sci Rep 7:3095).

Time in **seconds** (the engine converts dt_ms), frequency ``f`` in Hz, omega = 2 pi f::

    dx/dt = (a - x^2 - y^2) x - omega y + G sum_j W_ij (x_j(t - tau_ij) - x_i)
    dy/dt = (a - x^2 - y^2) y + omega x + G sum_j W_ij (y_j(t - tau_ij) - y_i)

The diffusive coupling is computed as ``sum_j W_ij x_j(t - tau_ij) - s_i x_i`` with
``s_i = sum_j W_ij`` (``wsum_i``, computed once per connectome): the kernel gathers each nonzero's
delayed x and y once (one row of the ring buffer holds both), so the per-nonzero work is one load,
multiply and add per state, and ``- s_i x_i`` is O(regions), not O(nonzeros).

For a > 0 and no coupling the node oscillates at f with amplitude sqrt(a). ``a`` and ``f``
may be given per region (e.g. f from each region's empirical BOLD peak, 0.04-0.07 Hz).
Deco 2017 runs it at the BOLD time scale (dt_ms=100) with x sampled at the TR as BOLD:
``simulate(..., bold_monitor="sample")``. Noise: ``sqrt(dt_s) * sigma * N(0, 1)`` on x and y
(sigma per sqrt(s); Deco 2017 beta = 0.02).
"""

from __future__ import annotations

from numba import njit

from explorer.models.base import Model, Param
from explorer.models.vecmath import flt

PARAMS = (
    Param("a", -0.02, -0.2, 0.2, "1/s", "bifurcation parameter (a > 0: limit cycle of radius sqrt(a))",
          -10.0, 10.0, per_region=True),
    Param("f", 0.05, 0.02, 0.1, "Hz", "intrinsic frequency (omega = 2 pi f)", 0.0, per_region=True),
    Param("G", 0.5, 0.0, 2.0, "1/s", "global coupling strength", 0.0, per_region=False),
)
A, F, G = range(3)
_TWO_PI = 6.283185307179586


@njit(error_model="numpy")
def dfun(x, i, c, p, wsum_i, dx, B):
    for b in range(B):
        xx = x[0, i, b]
        yy = x[1, i, b]
        g = p[G, i, b]
        w = flt(_TWO_PI, xx) * p[F, i, b]
        r = p[A, i, b] - xx * xx - yy * yy
        dx[0, b] = r * xx - w * yy + g * (c[0, b] - wsum_i * xx)
        dx[1, b] = r * yy + w * xx + g * (c[1, b] - wsum_i * yy)


MODEL = Model(
    name="hopf",
    doc="Stuart-Landau oscillators with diffusive coupling (Deco 2017). Time in s, f in Hz.",
    params=PARAMS,
    states=("x", "y"),
    coupled=0,
    dfun=dfun,
    coupling="diffusive",
    coupled_states=(0, 1),
    noise_states=(0, 1),
    bold_state=0,
    bounds=((-1e3, 1e3), (-1e3, 1e3)),
    clamp=(None, None),
    init=((-0.1, 0.1), (-0.1, 0.1)),
    time_unit_ms=1000.0,
    noise_doc="additive on x and y: sqrt(dt_s) * sigma * N(0,1) (sigma per sqrt(s)); Deco 2017 uses 0.02",
    references=("Deco et al. 2017, Sci Rep 7:3095",),
)
