"""The batched brain-network simulator: delays, coupling, noise, online monitors, numba kernels.

    from explorer.sim import simulate, warmup
    ds = simulate("rww_ei", W, L, params=[{"G": 0.5}, {"G": 1.2}], duration_s=60, bold_tr_s=2.0)
"""

from explorer.sim.simulate import run_batch, simulate, warmup

__all__ = ["simulate", "warmup", "run_batch"]
