"""Regional heterogeneity, FIC and objectives in the parameter space: what a trial's free values become."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from explorer.cohort import demo
from explorer.cohort.maps import fc_gradient, fc_networks, sc_strength
from explorer.config import parse_config
from explorer.errors import ConfigError
from explorer.params.names import split_name
from explorer.scoring.objectives import objective_value, parse_objective
from explorer.search import cohort_reference, subject_spaces

RWW = {
    "name": "t",
    "cohort": {"source": "demo"},
    "model": "rww_ei",
    "params": {"free": {"G": {"low": 0.1, "high": 0.7}}},
    "simulation": {"duration_s": 40, "dt_ms": 1.0, "transient_s": 0},
}


def cfg(**params):
    data = copy.deepcopy(RWW)
    data["params"].update(params)
    return parse_config(data)


def error_of(**params) -> str:
    with pytest.raises(ConfigError) as info:
        cfg(**params)
    return str(info.value)


@pytest.fixture(scope="module")
def cohort():
    return demo().subjects


def test_free_names():
    assert split_name("G") == ("G", "value", None)
    assert split_name("w_plus.base") == ("w_plus", "base", None)
    assert split_name("w_plus.scale") == ("w_plus", "scale", None)
    assert split_name("J_NMDA[net-3]") == ("J_NMDA", "group", "net-3")
    for bad in ("w_plus.mean", "w_plus[]", "w_plus[a b]", "1G"):
        with pytest.raises(ValueError, match="not a free-parameter name"):
            split_name(bad)


def test_map_expands_to_base_plus_scale_times_map(cohort):
    c = cfg(free={"G": {"low": 0.1, "high": 0.7}, "w_plus.base": {}, "w_plus.scale": {}}, maps={"w_plus": "sc_strength"})
    assert c.free_bounds()["w_plus.base"] == (1.0, 2.0, False)      # the model's bounds
    assert c.free_bounds()["w_plus.scale"] == (-0.5, 0.5, False)    # +-(high - low) / 2
    s = cohort[1]
    space = subject_spaces(c, [s])[s.id]
    got = space.expand({"G": 0.4, "w_plus.base": 1.2, "w_plus.scale": 0.3})
    m = sc_strength(s.weights)
    assert m.min() == 0.0 and m.max() == 1.0
    np.testing.assert_allclose(got["w_plus"], 1.2 + 0.3 * m)
    assert got["G"] == 0.4 and "J_I" not in got


def test_each_subject_gets_its_own_map_and_fc_gradient_is_the_subjects(cohort):
    c = cfg(free={"G": {}, "w_plus.base": {}, "w_plus.scale": {}}, maps={"w_plus": "fc_gradient"})
    spaces = subject_spaces(c, cohort[:2])
    a, b = (spaces[s.id].maps["w_plus"] for s in cohort[:2])
    np.testing.assert_allclose(a, fc_gradient(cohort[0].fc))
    assert not np.allclose(a, b)


def test_candidate_leaving_hard_limits_is_refused(cohort):
    # J_NMDA's hard low is 0: base 0.05 with scale -0.1 reaches -0.05 in the region where m = 1
    c = cfg(free={"G": {}, "J_NMDA.base": {"low": 0.01, "high": 0.3}, "J_NMDA.scale": {"low": -0.2, "high": 0.2}},
            maps={"J_NMDA": "sc_strength"})
    space = subject_spaces(c, cohort[:1])[cohort[0].id]
    why = space.refusal({"G": 0.3, "J_NMDA.base": 0.05, "J_NMDA.scale": -0.1})
    assert why.startswith("refused: J_NMDA") and "[-0.05, 0.05]" in why and "hard limits [0, inf]" in why
    assert space.refusal({"G": 0.3, "J_NMDA.base": 0.15, "J_NMDA.scale": -0.1}) is None
    out = space.full_batch([{"G": 0.3, "J_NMDA.base": 0.05, "J_NMDA.scale": -0.1},
                            {"G": 0.3, "J_NMDA.base": 0.15, "J_NMDA.scale": -0.1}], cohort[0].weights)
    assert isinstance(out[0], str) and out[0].startswith("refused")
    assert min(out[1]["J_NMDA"]) == pytest.approx(0.05)


def test_fc_networks_groups_come_from_the_cohort_mean_and_are_shared(cohort, tmp_path):
    names = [f"J_NMDA[net{i}]" for i in range(1, 8)]
    c = cfg(free={"G": {}, **{n: {} for n in names}}, groups={"J_NMDA": "fc_networks7"})
    fc_mean = cohort_reference(tmp_path, cohort)
    np.testing.assert_allclose(fc_mean, np.mean([s.fc for s in cohort], axis=0))
    spaces = subject_spaces(c, cohort, fc_mean)
    groups = fc_networks(fc_mean, 7)
    free = {"G": 0.3, **{n: 0.1 + 0.01 * i for i, n in enumerate(names)}}
    for s in cohort:
        got = spaces[s.id].expand(free)["J_NMDA"]
        assert got == [free[f"J_NMDA[{g}]"] for g in groups]       # every subject: the same regions per group
    # the reference is kept: another cohort later does not change what the groups mean
    again = cohort_reference(tmp_path, cohort[:2])
    np.testing.assert_array_equal(again, fc_mean)


def test_group_file_in_label_order_and_names_checked(cohort, tmp_path):
    labels = cohort[0].labels
    table = tmp_path / "lobes.csv"
    rows = [(lab, "front" if "Front" in lab else "rest") for lab in labels]
    table.write_text("label,group\n" + "\n".join(f"{a},{b}" for a, b in reversed(rows)) + "\n")
    c = cfg(free={"G": {}, "w_plus[front]": {}, "w_plus[rest]": {}}, groups={"w_plus": str(table)})
    space = subject_spaces(c, cohort[:1])[cohort[0].id]
    got = space.expand({"G": 0.3, "w_plus[front]": 1.9, "w_plus[rest]": 1.1})["w_plus"]
    assert got == [1.9 if "Front" in lab else 1.1 for lab in labels]
    msg = error_of(free={"G": {}, "w_plus[front]": {}, "w_plus[back]": {}}, groups={"w_plus": str(table)})
    assert "params.free.w_plus[back]" in msg and "unknown group 'back'" in msg and "'front'" in msg
    msg = error_of(free={"G": {}, "w_plus[front]": {}}, groups={"w_plus": str(table)})
    assert "params.groups.w_plus" in msg and "w_plus[rest]" in msg


def test_group_file_with_labels_of_another_atlas_names_file_and_label(cohort, tmp_path):
    table = tmp_path / "other_atlas.tsv"
    table.write_text("label\tgroup\n" + "\n".join(f"ROI_{i}\t{'a' if i % 2 else 'b'}" for i in range(80)) + "\n")
    c = cfg(free={"G": {}, "w_plus[a]": {}, "w_plus[b]": {}}, groups={"w_plus": str(table)})
    with pytest.raises(ConfigError) as info:
        subject_spaces(c, cohort[:1])
    msg = str(info.value)
    assert str(table) in msg and "'ROI_0'" in msg and "Precentral_L" in msg


@pytest.mark.parametrize("params, field, words", [
    ({"maps": {"w_plus": "myelin"}}, "params.maps.w_plus", "neither one of"),
    ({"maps": {"G": "sc_strength"}}, "params.maps.G", "one global value"),
    ({"maps": {"nope": "sc_strength"}}, "params.maps.nope", "unknown parameter"),
    ({"free": {"G": {}, "w_plus.base": {}}}, "params.free.w_plus.base", "needs a map"),
    ({"free": {"G": {}, "w_plus": {}}, "maps": {"w_plus": "sc_strength"}}, "params.free.w_plus",
     "search w_plus.base and w_plus.scale"),
    ({"free": {"G": {}, "w_plus.base": {}}, "maps": {"w_plus": "sc_strength"}}, "params.maps.w_plus",
     "w_plus.scale"),
    ({"free": {"G": {}, "w_plus[x]": {}}}, "params.free.w_plus[x]", "needs groups"),
    ({"free": {"G": {}, "w_plus[net9]": {}}, "groups": {"w_plus": "fc_networks2"}}, "params.free.w_plus[net9]",
     "unknown group"),
    ({"free": {"G": {}, "w_plus.mean": {}}}, "params.free.w_plus.mean", "not a free-parameter name"),
    ({"free": {"G": {}, "w_plus.base": {"low": -1, "high": 2}, "w_plus.scale": {}}, "maps": {"w_plus": "sc_strength"}},
     "params.free.w_plus.base", "hard limits"),
    ({"fic": True, "free": {"G": {}, "J_I": {}}}, "params.fic", "J_I is also in ['params.free']"),
    ({"maps": {"w_plus": "sc_strength"}, "groups": {"w_plus": "fc_networks2"},
      "free": {"G": {}, "w_plus.base": {}, "w_plus.scale": {}}}, "params.groups.w_plus", "both a map and groups"),
    ({"fic_target_hz": 0}, "params.fic_target_hz", "greater than 0"),
])
def test_bad_regional_settings_name_the_field(params, field, words):
    msg = error_of(**params)
    assert f"field '{field}'" in msg, msg
    assert words in msg, msg


def test_fic_is_refused_for_other_models():
    data = copy.deepcopy(RWW)
    data["model"] = "hopf"
    data["params"] = {"free": {"G": {}}, "fic": True}
    with pytest.raises(ConfigError, match=r"field 'params.fic'.*model 'hopf' declares no feedback inhibition control"):
        parse_config(data)


def test_fic_sets_j_i_per_region_for_the_simulated_connectome(cohort):
    from explorer.models import get_model
    from explorer.models.fic import excitatory_rate, fic_inhibition
    from explorer.models.arrays import param_array

    c = cfg(fic=True, free={"G": {}, "w_plus": {}})
    s = cohort[0]
    space = subject_spaces(c, [s])[s.id]
    assert space.fic_target_hz == 3.0
    out = space.full_batch([{"G": 0.4, "w_plus": 1.4}, {"G": 0.7, "w_plus": 1.9}], s.weights)
    assert isinstance(out[0], dict) and len(out[0]["J_I"]) == s.n_regions
    assert isinstance(out[1], str) and out[1].startswith("fic did not converge: fixed point unstable")
    # the J_I puts every region's rate at the target on the fixed point of this connectome
    p = param_array(get_model("rww_ei"), [out[0]], s.n_regions)
    res = fic_inhibition(p, s.weights, 3.0)
    np.testing.assert_allclose(out[0]["J_I"], res.J_I[:, 0])
    rate = excitatory_rate(res.S_E, res.S_I, p, s.weights)
    np.testing.assert_allclose(rate, 3.0, atol=1e-6)
    # another connectome, another J_I
    other = space.full_batch([{"G": 0.4, "w_plus": 1.4}], cohort[1].weights)[0]
    assert not np.allclose(other["J_I"], out[0]["J_I"])


def test_objective_combinations():
    assert parse_objective("fc_r") == ((1.0, "fc_r"),)
    assert parse_objective("fc_r + 0.5*fc_r_residual - fcd_ks") == ((1.0, "fc_r"), (0.5, "fc_r_residual"),
                                                                   (-1.0, "fcd_ks"))
    scores = {"fc_r": 0.5, "fc_r_residual": 0.2, "fcd_ks": 0.3}
    assert objective_value(scores, "fc_r + 0.5*fc_r_residual - fcd_ks") == pytest.approx(0.3)
    assert math.isnan(objective_value({"fc_r": 0.5}, "fc_r - fcd_ks"))
    for bad, words in [("fc_r + fcd_ks", "needs a - sign"), ("fc_r - fc_r_residual", r"needs a \+ sign"),
                       ("fc_r + fc_q", "unknown objective score 'fc_q'"), ("fc_r +", "ends with an operator"),
                       ("fc_r + fc_r", "names a score twice"), ("x*fc_r", "bad weight")]:
        with pytest.raises(ConfigError, match=words):
            parse_objective(bad)
    c = cfg(free={"G": {}})
    data = copy.deepcopy(RWW)
    data["objective"] = ["fc_r + fc_r_residual", "fcd_ks"]
    c = parse_config(data)
    assert c.directions == ["maximize", "minimize"]


def test_fc_r_residual_scores_the_individual_part():
    from explorer.scoring.scores import fit_scores

    rng = np.random.default_rng(3)
    t, n = 300, 12
    common = rng.standard_normal((t, 1))
    own = rng.standard_normal((t, n))
    bold = common + own
    emp_fc = np.corrcoef(bold.T)
    fc_mean = emp_fc * 0.8
    got = fit_scores(bold, 2.0, emp_fc, None, None, fc_mean=fc_mean)
    assert got["fc_r"] > 0.2                          # band-passed copy of the same signal: positive fit
    assert -1 <= got["fc_r_residual"] <= 1
    assert math.isnan(fit_scores(bold, 2.0, emp_fc, None, None)["fc_r_residual"])
    # residual r is the r of the deviations from the cohort mean
    from explorer.scoring.features import fc, preprocess
    from explorer.scoring.options import FeatureOptions
    from explorer.scoring.scores import fc_r

    sim_fc = fc(preprocess(bold, 2.0, FeatureOptions()))
    assert got["fc_r_residual"] == pytest.approx(fc_r(sim_fc - fc_mean, emp_fc - fc_mean))


def test_bold_tr_defaults_to_the_cohorts_and_dt_must_divide_it(cohort):
    from explorer.config import check_tr
    from explorer.runner.inputs import bold_tr
    from explorer.sim.settings import dt_divisors

    c = cfg(free={"G": {}})
    assert c.simulation.bold_tr_s is None
    assert bold_tr(c, cohort[0]) == 2.0 == c.simulation.simulate_kwargs(2.0)["bold_tr_s"]
    data = copy.deepcopy(RWW)
    data["simulation"]["bold_tr_s"] = 0.72
    with pytest.raises(ConfigError, match=r"simulation.bold_tr_s': 0.72 s, but subject NAP_001's BOLD has TR 2 s"):
        bold_tr(parse_config(data), cohort[0])
    data = copy.deepcopy(RWW)
    data["simulation"]["dt_ms"] = 0.5
    c = parse_config(data)
    check_tr(c, 0.72, "subject X")              # 720 ms / 0.5 ms: fine
    data["simulation"]["dt_ms"] = 0.7
    with pytest.raises(ConfigError, match="duration_s .40 s. is not a whole multiple of dt = 0.7 ms"):
        parse_config(data)                      # refused before any subject's TR is known
    data["simulation"]["duration_s"] = 70       # 100000 steps of 0.7 ms
    c = parse_config(data)
    with pytest.raises(ConfigError) as info:
        check_tr(c, 0.72, "subject X")
    msg = str(info.value)
    assert "simulation.dt_ms" in msg and "the TR of subject X (0.72 s)" in msg
    good = dt_divisors(0.72, 0.7)
    assert all(round(720 / d) * d == pytest.approx(720) for d in good) and 0.72 in good and 0.6 in good
    both = dt_divisors([70.0, 0.72], 0.7)      # dt must divide the duration (70 s) as well as the TR
    assert all(round(720 / d) * d == pytest.approx(720) and round(70000 / d) * d == pytest.approx(70000)
               for d in both) and 0.6 not in both and 0.5 in both
    assert ", ".join(f"{d:g}" for d in both) in msg


def test_noise_sigma_can_be_searched_per_trial(cohort):
    from explorer.params.names import split_noise

    c = cfg(fic=True, free={"G": {}, "noise_sigma": {"low": 0.001, "high": 0.02, "log": True}})
    assert c.free_bounds()["noise_sigma"] == (0.001, 0.02, True)
    s = cohort[0]
    got = subject_spaces(c, [s])[s.id].full_batch([{"G": 0.4, "noise_sigma": 0.004}], s.weights)[0]
    assert got["noise_sigma"] == 0.004 and len(got["J_I"]) == s.n_regions
    sets, sigmas = split_noise([got, {"G": 0.1}], 0.01)
    assert sigmas == [0.004, 0.01] and "noise_sigma" not in sets[0] and sets[0]["G"] == 0.4
    msg = error_of(free={"G": {}, "noise_sigma": {}})
    assert "field 'params.free.noise_sigma'" in msg and "give low and high" in msg


def test_map_file_is_found_next_to_the_config_and_frozen_absolute(cohort, tmp_path, monkeypatch):
    import yaml

    from explorer.config import load_config

    labels = cohort[0].labels
    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "myelin.tsv").write_text("label\tvalue\n" + "\n".join(f"{lab}\t{i}" for i, lab in enumerate(labels)))
    data = copy.deepcopy(RWW)
    data["params"] = {"free": {"G": {}, "w_plus.base": {}, "w_plus.scale": {}}, "maps": {"w_plus": "myelin.tsv"}}
    (tmp_path / "cfgs" / "study.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    c = load_config(tmp_path / "cfgs" / "study.yaml")
    assert c.params.maps["w_plus"] == str(tmp_path / "cfgs" / "myelin.tsv")
    m = subject_spaces(c, cohort[:1])[cohort[0].id].maps["w_plus"]
    np.testing.assert_allclose(m, np.arange(len(labels)) / (len(labels) - 1))
    data["params"]["maps"] = {"w_plus": "missing.tsv"}
    (tmp_path / "cfgs" / "study.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"field 'params.maps.w_plus': 'missing.tsv' is neither one of"):
        load_config(tmp_path / "cfgs" / "study.yaml")
