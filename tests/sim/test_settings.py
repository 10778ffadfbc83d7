"""RunSettings: one set of run-setting defaults and one check, shared by simulate() and study configs."""

from __future__ import annotations

import inspect
import pickle

import numpy as np
import pytest

from explorer.errors import ConfigError, OptionError, SimulationError
from explorer.sim import RunSettings, simulate
from explorer.sim.settings import dt_divisors

W = np.array([[0.0, 1.0], [1.0, 0.0]])
L = np.array([[0.0, 20.0], [20.0, 0.0]])


def test_defaults_are_the_study_configs_and_simulate_reads_them():
    d = RunSettings()
    assert (d.duration_s, d.dt_ms, d.transient_s, d.velocity, d.noise_sigma, d.bold_tr_s, d.integrator,
            d.bold_monitor, d.dtype, d.repeats) == (300.0, 0.1, 20.0, 20.0, 0.01, None, "euler", "balloon",
                                                    "float64", 1)
    sig = inspect.signature(simulate).parameters
    for name in ("duration_s", "dt_ms", "transient_s", "velocity", "noise_sigma", "integrator", "dtype",
                 "bold_monitor"):
        assert sig[name].default == getattr(d, name), name
    from explorer.cohort.twins import synthetic

    syn = inspect.signature(synthetic).parameters
    for name in ("duration_s", "dt_ms", "transient_s", "velocity", "noise_sigma"):
        assert syn[name].default == getattr(d, name), name


@pytest.mark.parametrize("changes, field, words", [
    (dict(dt_ms=0.0), "dt_ms", "positive number of ms"),
    (dict(dt_ms=float("nan")), "dt_ms", "positive number of ms"),
    (dict(dt_ms=0.3), "dt_ms", "transient_s (20 s) is not a whole multiple of dt = 0.3 ms"),
    (dict(duration_s=0.0), "duration_s", "> 0"),
    (dict(transient_s=-1.0), "transient_s", ">= 0"),
    (dict(velocity=0.0), "velocity", "> 0 m/s"),
    (dict(noise_sigma=-0.1), "noise_sigma", ">= 0"),
    (dict(integrator="rk4"), "integrator", "['euler', 'heun'], got 'rk4'"),
    (dict(bold_monitor="nope"), "bold_monitor", "['balloon', 'sample'], got 'nope'"),
    (dict(dtype="float16"), "dtype", "['float64', 'float32'], got 'float16'"),
    (dict(repeats=0), "repeats", "integer >= 1"),
    (dict(repeats=True), "repeats", "integer >= 1"),
    (dict(bold_tr_s=0.0), "bold_tr_s", "null (the cohort's TR)"),
    (dict(bold_tr_s=400.0), "bold_tr_s", "longer than duration_s (300 s)"),
])
def test_each_bad_field_is_named(changes, field, words):
    with pytest.raises(OptionError) as info:
        RunSettings(**changes)
    assert isinstance(info.value, ConfigError)
    problems = dict(info.value.problems)
    assert list(problems) == [field], problems
    assert words in problems[field]
    assert f"simulation.{field}: " in str(info.value)


def test_all_problems_are_reported_together():
    with pytest.raises(OptionError) as info:
        RunSettings(integrator="rk4", dtype="float16", velocity=-1.0)
    assert [f for f, _ in info.value.problems] == ["velocity", "integrator", "dtype"]
    back = pickle.loads(pickle.dumps(info.value))        # crosses Ray process boundaries intact
    assert back.problems == info.value.problems and str(back) == str(info.value)


def test_the_subjects_tr_is_checked_when_known():
    s = RunSettings(duration_s=7.0, transient_s=0.0, dt_ms=0.7)     # 10000 steps
    assert s.problems() == [] and s.problems(tr_s=0.7) == []
    (field, msg), = s.problems(tr_s=0.72, tr_what="the TR of subject X")
    assert field == "dt_ms"
    assert msg.startswith("the TR of subject X (0.72 s) is not a whole multiple of dt = 0.7 ms")
    assert msg.endswith("dt values that divide duration_s (7 s) and the TR of subject X (0.72 s): "
                        "0.4, 0.5, 0.625, 0.8, 1, 1.25 ms")
    assert dt_divisors([7.0, 0.72], 0.7) == [0.4, 0.5, 0.625, 0.8, 1.0, 1.25]
    with pytest.raises(OptionError, match="longer than duration_s"):
        RunSettings(duration_s=1.0, transient_s=0.0).check(tr_s=2.0)
    # bold_tr_s, when given, is the TR: the subject's is not used
    assert RunSettings(bold_tr_s=2.0).problems(tr_s=0.33) == []


def test_dt_divisors_divide_every_span_and_reach_beyond_10_ms():
    assert dt_divisors(2.0, 100.0, k=3) == [80.0, 100.0, 125.0]
    assert dt_divisors([300.0, 20.0], 0.3) == [0.2, 0.25, 0.256, 0.32, 0.4, 0.5]
    assert dt_divisors(1e-7, 0.1) == []


def test_simulate_uses_the_same_check_and_names_the_argument():
    kw = dict(duration_s=0.1, transient_s=0.0, bold_tr_s=None)
    for changes in (dict(dt_ms=0.3, transient_s=20.0), dict(integrator="rk4"), dict(bold_monitor="nope"),
                    dict(dtype="float16"), dict(velocity=0.0)):
        run = {**kw, **changes}
        with pytest.raises(OptionError) as expected:
            RunSettings(**run)
        with pytest.raises(SimulationError) as got:
            simulate("hopf", W, L, {}, **run)
        assert str(got.value) == "; ".join(f"{f}: {m}" for f, m in expected.value.problems)


def test_settings_argument_equals_the_keywords():
    s = RunSettings(duration_s=0.2, dt_ms=0.5, transient_s=0.1, velocity=10.0, noise_sigma=0.002,
                    integrator="heun", dtype="float32", bold_monitor="sample", bold_tr_s=0.1)
    a = simulate("hopf", W, L, {"G": 0.3}, settings=s, seed=2, tavg_ms=1.0)
    b = simulate("hopf", W, L, {"G": 0.3}, seed=2, tavg_ms=1.0, **s.simulate_kwargs())
    np.testing.assert_array_equal(a["bold"].values, b["bold"].values)
    np.testing.assert_array_equal(a["tavg"].values, b["tavg"].values)
    assert a.attrs["integrator"] == "heun" and a.attrs["transient_s"] == 0.1 and a.attrs["bold_tr_s"] == 0.1
    # settings.bold_tr_s None: the TR comes from the bold_tr_s argument
    c = simulate("hopf", W, L, {"G": 0.3}, settings=RunSettings(duration_s=0.2, transient_s=0.0), bold_tr_s=0.05)
    assert c["bold"].shape == (1, 4, 2)
    with pytest.raises(SimulationError, match=r"both as settings= and as keywords \['dt_ms'\]"):
        simulate("hopf", W, L, {}, settings=s, dt_ms=0.5)


def test_simulate_kwargs_need_a_tr():
    assert RunSettings().simulate_kwargs(2.0)["bold_tr_s"] == 2.0
    assert set(RunSettings().simulate_kwargs(2.0)) == {"duration_s", "dt_ms", "transient_s", "velocity",
                                                        "noise_sigma", "bold_tr_s", "integrator", "dtype",
                                                        "bold_monitor"}
    with pytest.raises(ConfigError, match="simulation.bold_tr_s"):
        RunSettings().simulate_kwargs(None)
