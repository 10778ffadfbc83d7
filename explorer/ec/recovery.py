"""Recovery of a known EC on synthetic twins: perturb an SC, simulate the nonlinear Hopf model, fit back.

Each synthetic subject's true EC is the SC with log-normal multiplicative noise on the fitted
connections (``W_true = SC * exp(sigma * N(0, 1))`` on the mask, seeded per subject). Its BOLD is
simulated with the *nonlinear* Hopf network (:func:`explorer.sim.simulate_arrays`, x sampled at the TR),
preprocessed like a cohort's BOLD, and the EC is fitted with :func:`explorer.ec.fit_ec` from the
unperturbed SC with the true G, a and f. The figure of merit is the edge-wise Pearson r between the
fitted and the true EC over the mask, against the r of the starting SC (the baseline a fit must beat).

Measured (``benchmarks/bench_ec_recovery.py``, 80 gw regions, sigma 1, L-BFGS-B): on unfiltered
(detrended, z-scored) BOLD the fit beats the SC for every subject (median r 0.71 against 0.63 at 355
TRs, 0.80 against 0.63 at 1200 TRs); band-passed 0.008-0.08 Hz it barely does (0.61 / 0.65). The
analytic moments are those of the unfiltered x: a band-pass changes the FC and the lag-tau covariance
the fit matches, so the fit then explains the filter with wrong connections.

Not re-exported by :mod:`explorer.ec`: it imports the numba simulator.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from explorer.ec.fit import fit_ec, max_euler_dt_ms
from explorer.ec.options import EcOptions
from explorer.ec.targets import empirical_targets
from explorer.ec.unit import model_filter, target_features
from explorer.errors import SimulationError
from explorer.scoring.options import FeatureOptions
from explorer.sim import simulate_arrays


@dataclass(frozen=True)
class Recovery:
    """One synthetic subject: how close the fitted EC came to the true one.

    seed: the subject's seed (perturbation and simulation); n_trs: BOLD length in TRs;
    r_fit / r_sc: edge-wise Pearson r over the mask of the fitted EC / of the starting SC with the
    true EC; fc_r_start / fc_r: analytic FC r of the SC / of the fit with the simulated FC;
    iterations, status: of :func:`fit_ec`; sim_wall_s, fit_wall_s: seconds.
    """

    seed: int
    n_trs: int
    r_fit: float
    r_sc: float
    fc_r_start: float
    fc_r: float
    iterations: int
    status: str
    sim_wall_s: float
    fit_wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def perturbed_ec(sc: np.ndarray, mask: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """``sc * exp(sigma * N(0, 1))`` on ``mask`` (0 elsewhere), one independent draw per directed edge."""
    rng = np.random.default_rng(seed)
    noise = np.exp(float(sigma) * rng.standard_normal(np.shape(sc)))
    return np.where(mask, np.asarray(sc, dtype=np.float64) * noise, 0.0)


def edge_r(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson r of ``a`` and ``b`` over the edges of ``mask``; NaN when either side is constant."""
    x, y = np.asarray(a, dtype=np.float64)[mask], np.asarray(b, dtype=np.float64)[mask]
    x, y = x - x.mean(), y - y.mean()
    d = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / d if d > 0 else math.nan


def recover_ec(sc: np.ndarray, lengths: np.ndarray, mask: np.ndarray, *, g: float, a: float | np.ndarray,
               f_hz: float | np.ndarray, seeds: Sequence[int], sigma: float = 0.5, n_trs: int = 355,
               tr_s: float = 2.0, features: FeatureOptions | None = None, opts: EcOptions | None = None,
               noise_sigma: float = 0.02, dt_ms: float = 100.0, transient_s: float = 60.0,
               velocity: float = 20.0) -> list[Recovery]:
    """Fit back the EC of one synthetic subject per seed; see the module docstring.

    sc: (N, N) the start and the unperturbed EC (the simulator's weights); lengths: (N, N) mm;
    mask: (N, N) bool, the perturbed and fitted connections; g (1/s), a (1/s, < 0), f_hz (Hz): the
    Hopf parameters, one value or one per region (a and f), shared by the simulation and the fit;
    sigma: the log-normal spread of the perturbation; n_trs: the simulated BOLD length (after
    ``transient_s`` s); tr_s: its TR (s); features: the preprocessing (default: band-pass
    0.008-0.08 Hz, detrended, z-scored); opts: the fit's options; noise_sigma, dt_ms, velocity (m/s):
    the simulation's. Raises SimulationError when a true EC's linearisation is unstable or its
    Euler step ``dt_ms`` is too long (lower g or sigma), or when a simulation diverges.
    """
    features = features if features is not None else FeatureOptions(bandpass=(0.008, 0.08))
    opts = opts or EcOptions()
    mask = np.asarray(mask, dtype=bool)
    sc = np.where(mask, np.asarray(sc, dtype=np.float64), 0.0)
    lag = opts.lag_trs(tr_s)
    out = []
    for seed in seeds:
        true = perturbed_ec(sc, mask, sigma, int(seed))
        dt_max = max_euler_dt_ms(true, g, a, f_hz)
        if not (dt_max > dt_ms):
            raise SimulationError(
                f"recovery subject with seed {seed}: the true EC (G={g}, sigma={sigma}) allows an Euler step of "
                f"{dt_max:.3g} ms at most, the simulation uses dt_ms={dt_ms}: lower G or sigma")
        t0 = time.perf_counter()
        res = simulate_arrays("hopf", true, lengths, params=[{"G": g, "a": a, "f": f_hz}],
                              duration_s=n_trs * float(tr_s), dt_ms=dt_ms, velocity=velocity,
                              noise_sigma=noise_sigma, bold_tr_s=tr_s, transient_s=transient_s,
                              bold_monitor="sample", seed=int(seed))
        sim_s = time.perf_counter() - t0
        if bool(res.diverged[0]):
            raise SimulationError(f"recovery subject with seed {seed}: the nonlinear simulation diverged; "
                                  "lower G, sigma or noise_sigma")
        used = target_features(features.to_dict(), opts)
        target = empirical_targets(res.bold[0], tr_s, used, lag)
        fit = fit_ec(sc, mask, g, a, f_hz, target, tr_s, opts, model_filter(used, tr_s, opts))
        out.append(Recovery(seed=int(seed), n_trs=int(res.bold.shape[1]), r_fit=edge_r(fit.weights, true, mask),
                            r_sc=edge_r(sc, true, mask), fc_r_start=fit.fc_r_start,
                            fc_r=fit.fc_r, iterations=fit.iterations, status=fit.status, sim_wall_s=sim_s,
                            fit_wall_s=fit.wall_s))
    return out
