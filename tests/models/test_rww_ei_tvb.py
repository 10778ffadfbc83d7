"""rww_ei against real TVB (tvb-library, the ``test`` extra): same network, G, delays, dt, integrator.

The network is 8 regions of the bundled gw connectome (subject NAP_001, the 8 strongest regions;
weights normalised to max 1, tract lengths in mm, velocity 10 m/s: delays of 0.9-16.7 ms). TVB is set
up as ``ReducedWongWangExcInh(G=G)`` with ``coupling.Linear(a=1, b=0)``: TVB's model applies
``G * J_N`` to the coupling itself (its default G is 2.0, so ``Linear(a=G)`` must go with model
``G=1``). Noise off, TVB's default parameters (explorer's defaults are the same numbers).
Both start from the same constant history (explorer's seeded initial state).

Two findings pin the tolerances:

- TVB's delay machinery (``tvb.simulator.history.SparseHistory``) stores the history buffer and the
  weights in float32, so the coupling it feeds to the model is float32-rounded. With that buffer
  switched to float64 (a subclass with float64 arrays, below), TVB and explorer agree step for step
  to ~1e-15 relative: same equations, units, delays (``rint(L / v / dt)``), delay indexing and
  Euler/Heun schemes.
- Stock TVB (float32 history) follows explorer's float64 trajectory to < 5e-8 relative, and stays
  on explorer's settled state to < 7e-8 relative (the float32 coupling shifts its fixed point by that
  much, most near the crossover G = 0.25); asserted at 2e-7.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio

from explorer.models import get_model
from explorer.models.arrays import param_array
from explorer.sim import simulate
from explorer.sim.connectome import build_connectome
from explorer.sim.simulator import initial_state, run_batch

GW = Path(__file__).resolve().parents[2] / "explorer/cohort/data/gw/subjects/NAP_001/structural"
VELOCITY = 10.0  # m/s = mm/ms
MODEL = get_model("rww_ei")
#: G values: no coupling, the steepest part of this network's (monostable) low-to-high crossover
#: (slowest to settle), mid, high, and the top of rww_ei's default search range
GS = (0.0, 0.25, 0.5, 1.0, 2.0)


@pytest.fixture(scope="module")
def net() -> tuple[np.ndarray, np.ndarray]:
    """(weights, lengths mm) of the 8 strongest gw regions; weights normalised to max 1."""
    w = sio.loadmat(GW / "DTI_CM.mat")["sc"].astype(np.float64)
    ln = sio.loadmat(GW / "DTI_LEN.mat")["len"].astype(np.float64)
    np.fill_diagonal(w, 0.0)
    idx = np.sort(np.argsort(w.sum(axis=1))[-8:])
    w = w[np.ix_(idx, idx)]
    return w / w.max(), ln[np.ix_(idx, idx)]


@pytest.fixture(scope="module")
def tvb(tmp_path_factory):
    """TVB's simulator modules, imported with TVB_USER_HOME in a tmp dir (TVB writes logs there)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TVB_USER_HOME", str(tmp_path_factory.mktemp("tvb_home")))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Geodesic distance module is unavailable"
            pytest.importorskip("tvb.simulator.simulator", reason="tvb-library is in the test extra")
            from tvb.datatypes import connectivity
            from tvb.simulator import coupling, integrators, models, monitors, simulator
            from tvb.simulator.descriptors import NDArray
            from tvb.simulator.history import SparseHistory

    class SparseHistory64(SparseHistory):
        """TVB's sparse history with float64 buffer and weights (stock TVB uses float32)."""

        weights = NDArray(("n_node", "n_node"), "d")
        es_weights = NDArray(SparseHistory._es + ("n_mode",), "d")
        nnz_weights = NDArray(("n_nnzw",), "d")
        buffer = NDArray(("n_time", "n_cvar", "n_node", "n_mode"), "d", read_only=False)
        current_state = NDArray(("n_cvar", "n_node", "n_mode"), "d", read_only=False)
        delayed_state = NDArray(("n_node", "n_cvar", "n_node", "n_mode"), "d", read_only=False)

    return dict(connectivity=connectivity, coupling=coupling, integrators=integrators, models=models,
                monitors=monitors, simulator=simulator, History64=SparseHistory64)


def tvb_run(tvb, w, ln, x0, *, G, dt_ms, n_steps, heun, history64=False, J_I=None):
    """TVB trajectory (step, state, region) after each of ``n_steps`` steps from constant history x0."""
    n = w.shape[0]
    conn = tvb["connectivity"].Connectivity(
        weights=w.copy(), tract_lengths=ln.copy(), centres=np.zeros((n, 3)),
        region_labels=np.array([f"r{i}" for i in range(n)]), speed=np.array([VELOCITY]))
    conn.configure()
    kw = {} if J_I is None else {"J_i": np.asarray(J_I, dtype=np.float64)}
    model = tvb["models"].ReducedWongWangExcInh(G=np.array([G]), **kw)
    integ = tvb["integrators"].HeunDeterministic if heun else tvb["integrators"].EulerDeterministic
    sim = tvb["simulator"].Simulator(
        model=model, connectivity=conn, coupling=tvb["coupling"].Linear(a=np.array([1.0]), b=np.array([0.0])),
        integrator=integ(dt=dt_ms), monitors=(tvb["monitors"].Raw(),), conduction_speed=VELOCITY)
    horizon = int(np.rint(ln / VELOCITY / dt_ms).max()) + 1
    sim.initial_conditions = np.repeat(x0[None, :, :, None], horizon, axis=0)
    if history64:
        sim._configure_history = lambda ic=None: setattr(sim, "history", tvb["History64"].from_simulator(sim, ic))
    sim.configure()
    assert sim.history.buffer.dtype == (np.float64 if history64 else np.float32)
    # TVB's integer delays equal explorer's round(L / v / dt) on every nonzero weight
    ours = build_connectome(w, ln, VELOCITY, dt_ms)
    np.testing.assert_array_equal(conn.idelays[w != 0], ours.delay)
    (_, y), = sim.run(simulation_length=n_steps * dt_ms)
    assert y.shape[0] == n_steps
    return y[:, :, :, 0]


def explorer_run(w, ln, x0, trials, *, dt_ms, n_steps, heun):
    """explorer's trajectory [step, state, region, trial] from constant history x0 (the engine under simulate)."""
    n = w.shape[0]
    conn = build_connectome(w, ln, VELOCITY, dt_ms)
    p = param_array(MODEL, trials, n)
    x = np.repeat(x0[:, :, None], len(trials), axis=2)
    out = run_batch(MODEL, conn, p, x, list(range(len(trials))), n_steps=n_steps, dt_ms=dt_ms, tavg_n=1,
                    heun=heun, history="constant")
    return out["tavg"]


def _rel(a, b):
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.mark.parametrize("integrator", ["euler", "heun"])
def test_trajectory_matches_tvb_with_float64_history(tvb, net, integrator):
    """150 ms at dt 0.1 ms (the delays, up to 16.7 ms, wrap the ring buffer many times): equal to float64 round-off."""
    w, ln = net
    heun = integrator == "heun"
    x0 = initial_state(MODEL, w.shape[0], [3])[:, :, 0]
    J_I = np.linspace(0.8, 1.2, w.shape[0])
    trials = [{"G": 0.0}, {"G": 0.25}, {"G": 0.5}, {"G": 1.0}, {"G": 0.5, "J_I": J_I}]
    ours = explorer_run(w, ln, x0, trials, dt_ms=0.1, n_steps=1500, heun=heun)
    for k, tr in enumerate(trials):
        ref = tvb_run(tvb, w, ln, x0, G=tr["G"], J_I=tr.get("J_I"), dt_ms=0.1, n_steps=1500, heun=heun,
                      history64=True)
        assert _rel(ours[:, :, :, k], ref) < 1e-12, (tr, _rel(ours[:, :, :, k], ref))


@pytest.fixture(scope="module")
def settled(net):
    """explorer's settled state (state, region) per G: public simulate() at its defaults (Euler, dt
    0.1 ms), 10 s from the seed-7 start, noise off."""
    w, ln = net
    ds = simulate("rww_ei", w, ln, [{"G": g} for g in GS], duration_s=10.0, dt_ms=0.1, velocity=VELOCITY,
                  noise_sigma=0.0, seed=7, tavg_ms=100.0, bold_tr_s=None, transient_s=0.0)
    tavg = ds["tavg"].values  # (trial, time, region, state)
    assert np.max(np.abs(tavg[:, -1] - tavg[:, -2])) < 1e-11  # settled (last 100 ms)
    return {g: tavg[k, -1].T for k, g in enumerate(GS)}


@pytest.mark.parametrize("G", GS)
def test_stock_tvb_follows_and_settles_on_explorer_state(tvb, net, settled, G):
    """Stock TVB (float32 history), Heun, dt 0.5 ms:

    - from a seeded random start, 1 s of TVB follows explorer's trajectory to float32 coupling
      round-off (< 2e-7 relative);
    - started at explorer's settled state, TVB stays on it: every S_E, S_I within 2e-7 relative
      for 1 s (TVB settles on the same state).
    """
    w, ln = net
    x0 = initial_state(MODEL, w.shape[0], [7])[:, :, 0]
    ref = tvb_run(tvb, w, ln, x0, G=G, dt_ms=0.5, n_steps=2000, heun=True)
    ours = explorer_run(w, ln, x0, [{"G": G}], dt_ms=0.5, n_steps=2000, heun=True)[:, :, :, 0]
    assert _rel(ours, ref) < 2e-7, _rel(ours, ref)
    star = settled[G]
    stay = tvb_run(tvb, w, ln, star, G=G, dt_ms=0.5, n_steps=2000, heun=True)
    assert _rel(stay, star[None]) < 2e-7, _rel(stay, star[None])
