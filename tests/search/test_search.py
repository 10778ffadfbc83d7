"""Search: distributions, samplers, storage URLs, per-subject studies and the reaper (no Ray)."""

from __future__ import annotations

import copy

import optuna
import pytest
from optuna.trial import TrialState

from explorer.config import parse_config
from explorer.errors import ConfigError, StudyError
from explorer.secrets import redact_url
from explorer.search import (
    INTERRUPTED,
    ask_params,
    best_summary,
    distributions,
    list_subject_studies,
    make_sampler,
    open_storage,
    open_subject_study,
    reap_interrupted,
    storage_kind,
    study_name,
    subject_counts,
    subject_seed,
    subject_spaces,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

BASE = {
    "name": "s",
    "cohort": {"source": "demo"},
    "model": "rww_ei",
    "params": {"free": {"G": {"low": 0.5, "high": 3.0, "log": True}, "w_plus": {}}, "fixed": {"J_NMDA": 0.15}},
    "trials": 6,
}


def cfg(**top):
    data = copy.deepcopy(BASE)
    data.update(top)
    return parse_config(data)


def test_distributions_and_trial_params():
    c = cfg()
    d = distributions(c)
    assert list(d) == ["G", "w_plus"]
    assert (d["G"].low, d["G"].high, d["G"].log) == (0.5, 3.0, True)
    assert (d["w_plus"].low, d["w_plus"].high, d["w_plus"].log) == (1.0, 2.0, False)
    from explorer.cohort import demo

    space = subject_spaces(c, demo().subjects[:1])["NAP_001"]
    assert space.expand({"G": 1.0, "w_plus": 1.5}) == {"J_NMDA": 0.15, "G": 1.0, "w_plus": 1.5}


@pytest.mark.parametrize("name, cls", [("tpe", optuna.samplers.TPESampler), ("random", optuna.samplers.RandomSampler),
                                       ("qmc", optuna.samplers.QMCSampler)])
def test_sampler_factory(name, cls):
    assert isinstance(make_sampler(cfg(sampler={"name": name}), 1), cls)


def test_sampler_options_are_checked():
    with pytest.raises(ConfigError, match="sampler.options"):
        make_sampler(cfg(sampler={"name": "random", "options": {"bogus": 1}}), 0)


def test_subject_seeds_are_stable_and_distinct():
    assert subject_seed(0, "A") == subject_seed(0, "A")
    assert len({subject_seed(0, "A"), subject_seed(0, "B"), subject_seed(1, "A"), subject_seed(0, "A", 5)}) == 4


@pytest.mark.parametrize("url, kind", [("studies/x/optuna.log", "journal"), ("journal:///tmp/o.log", "journal"),
                                       ("sqlite:///tmp/o.db", "sqlite"), ("postgresql://u:p@h/db", "postgresql"),
                                       ("postgresql+psycopg2://u@h/db", "postgresql"), ("mysql://h/db", "rdb")])
def test_storage_kind(url, kind):
    assert storage_kind(url) == kind


def test_redact_hides_passwords():
    assert redact_url("postgresql://me:s3cret@db:5432/optuna") == "postgresql://me:***@db:5432/optuna"
    assert redact_url("sqlite:///a/b.db") == "sqlite:///a/b.db"


def test_unreachable_storage_is_a_study_error():
    with pytest.raises(StudyError, match=r"\*\*\*"):
        open_storage("postgresql://me:pw@127.0.0.1:1/none")


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_subject_studies_share_one_storage(tmp_path, kind):
    url = str(tmp_path / "optuna.log") if kind == "journal" else f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = open_storage(url)
    c = cfg()
    for sid in ("B", "A"):
        open_subject_study(storage, c, sid)
    other = cfg(name="other")
    open_subject_study(storage, other, "A")
    assert list_subject_studies(storage, "s") == {"A": study_name("s", "A"), "B": study_name("s", "B")}
    with pytest.raises(StudyError, match="objective"):
        open_subject_study(storage, cfg(objective=["fc_r", "fcd_ks"]), "A")


def _run(study, c, n, fail_reason=None):
    for _ in range(n):
        trial, free = ask_params(study, c)
        if fail_reason:
            trial.set_user_attr("reason", fail_reason)
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, free["G"])


def test_reaper_fails_running_trials_and_requeues_their_params_once(tmp_path):
    storage = open_storage(str(tmp_path / "optuna.log"))
    c = cfg()
    study = open_subject_study(storage, c, "A")
    _run(study, c, 2)
    _run(study, c, 1, fail_reason="diverged")
    running = [ask_params(study, c) for _ in range(2)]   # a "dead driver" leaves these RUNNING
    # a second process (resume) sees them
    study2 = open_subject_study(open_storage(str(tmp_path / "optuna.log")), c, "A")
    seen = []
    reaped = reap_interrupted(study2, on_reaped=lambda t: seen.append(t.number))
    assert sorted(reaped) == sorted(t.number for t, _ in running) == sorted(seen)
    counts = subject_counts(study2)
    assert (counts.complete, counts.failed, counts.interrupted, counts.running, counts.waiting) == (2, 1, 2, 0, 2)
    assert counts.done == 3 and counts.reasons == {"diverged": 1}
    assert reap_interrupted(study2) == []                      # idempotent
    # the re-enqueued trials come back first, with the same parameters
    again = [ask_params(study2, c)[1] for _ in range(2)]
    assert sorted(map(sorted, (p.items() for p in again))) == sorted(map(sorted, (p.items() for _, p in running)))
    states = {t.number: (t.state, t.user_attrs.get("reason")) for t in study2.trials}
    for t, _ in running:
        assert states[t.number] == (TrialState.FAIL, INTERRUPTED)


def test_reaper_after_a_crash_between_enqueue_and_fail_does_not_duplicate(tmp_path):
    storage = open_storage(str(tmp_path / "optuna.log"))
    c = cfg()
    study = open_subject_study(storage, c, "A")
    trial, free = ask_params(study, c)
    study.enqueue_trial(free, user_attrs={"requeued_from": trial.number})  # half-done earlier reap
    reap_interrupted(study)
    assert subject_counts(study).waiting == 1


def test_reaper_restricted_to_numbers(tmp_path):
    storage = open_storage(str(tmp_path / "optuna.log"))
    c = cfg()
    study = open_subject_study(storage, c, "A")
    a, _ = ask_params(study, c)
    b, _ = ask_params(study, c)
    assert reap_interrupted(study, {b.number}) == [b.number]
    assert subject_counts(study).running == 1


def test_grid_sampler_visits_exactly_the_grid(tmp_path):
    grid = {"G": [0.5, 1.0, 2.0], "w_plus": [1.2, 1.6]}
    c = cfg(sampler={"name": "grid", "grid": grid}, trials=None)
    assert c.n_trials == 6
    study = open_subject_study(open_storage(str(tmp_path / "optuna.log")), c, "A")
    asked = [ask_params(study, c) for _ in range(c.n_trials)]   # all in flight at once
    for t, p in asked:
        study.tell(t, p["G"])
    visited = sorted((t.params["G"], t.params["w_plus"]) for t in study.trials)
    assert visited == sorted((g, w) for g in grid["G"] for w in grid["w_plus"])


def test_best_summary_single_and_multi_objective(tmp_path):
    storage = open_storage(str(tmp_path / "optuna.log"))
    c = cfg()
    study = open_subject_study(storage, c, "A")
    assert best_summary(study, c.objectives) == {}
    _run(study, c, 4)
    best = best_summary(study, c.objectives)
    assert best["scores"]["fc_r"] == max(t.value for t in study.trials)
    m = cfg(objective=["fc_r", "fcd_ks"], name="m")
    ms = open_subject_study(storage, m, "A")
    for v in [(0.3, 0.2), (0.5, 0.25), (0.6, 0.6), (0.1, 0.5)]:
        t, _ = ask_params(ms, m)
        ms.tell(t, list(v))
    mb = best_summary(ms, m.objectives)
    # the compromise: nearest the utopia point once each objective is scaled to [0, 1] over the front
    assert mb["scores"] == {"fc_r": 0.5, "fcd_ks": 0.25} and mb["pareto"] == 3
    assert mb["pareto_front"] == [0, 1, 2]


def test_studies_name_their_metrics_and_finished_trial_count(tmp_path):
    from explorer.search import FINISHED_ATTR, finished_trials

    storage = open_storage(str(tmp_path / "optuna.log"))
    m = cfg(objective=["fc_r", "fcd_ks"], name="m")
    study = open_subject_study(storage, m, "A")
    assert study.metric_names == ["fc_r", "fcd_ks"] == m.objectives   # what optuna-dashboard shows
    assert open_subject_study(storage, m, "A", create=False).metric_names == m.objectives
    assert finished_trials(study) is None
    study.set_user_attr("finished_at", 3)   # a study written before the attribute was renamed
    assert finished_trials(study) == 3
    study.set_user_attr(FINISHED_ATTR, 5)
    assert FINISHED_ATTR == "finished_trials" and finished_trials(study) == 5
    # a study created before metric names were set gets them when opened for a run
    old = optuna.create_study(storage=storage, study_name=study_name("o", "A"), directions=["maximize"])
    assert old.metric_names is None
    assert open_subject_study(storage, cfg(name="o"), "A").metric_names == ["fc_r"]


@pytest.mark.cluster
def test_postgresql_storage_holds_subject_studies_and_reaps(postgres_server):
    optuna_url, _ = postgres_server
    storage = open_storage(optuna_url)
    c = cfg(name="pg")
    study = open_subject_study(storage, c, "A")
    _run(study, c, 2)
    ask_params(study, c)
    again = open_subject_study(open_storage(optuna_url), c, "A")
    assert len(reap_interrupted(again)) == 1
    counts = subject_counts(again)
    assert (counts.complete, counts.interrupted, counts.waiting) == (2, 1, 1)


def test_bold_peak_gives_each_subject_its_own_frequencies():
    import numpy as np

    from explorer.cohort import demo
    from explorer.scoring.features import peak_frequency
    from explorer.search import subject_params

    c = parse_config({"name": "h", "cohort": {"source": "demo", "features": {"bandpass": None}}, "model": "hopf",
                      "params": {"free": {"G": {}}, "fixed": {"f": "bold_peak", "a": -0.01}}, "trials": 2})
    cohort = demo()
    space = subject_spaces(c, cohort.subjects[:1])["NAP_001"]
    assert space.expand({"G": 1.0})["f"] == subject_params(c, cohort.subjects[0])["f"]
    p1, p2 = (subject_params(c, s) for s in cohort.subjects[:2])
    np.testing.assert_allclose(p1["f"], peak_frequency(cohort.subjects[0].bold, 2.0, (0.01, 0.1)))
    assert len(p1["f"]) == 80 and all(0.01 <= x <= 0.1 for x in p1["f"])
    assert p1["f"] != p2["f"]


@pytest.mark.parametrize("fixed, words", [({"f": "peak"}, "data-derived values ['bold_peak']"),
                                          ({"a": "bold_peak"}, "per-region frequencies in Hz")])
def test_bad_data_derived_value_names_the_field(fixed, words):
    with pytest.raises(ConfigError, match=r"params\.fixed\.") as err:
        parse_config({"name": "h", "cohort": {"source": "demo"}, "model": "hopf",
                      "params": {"free": {"G": {}}, "fixed": fixed}, "trials": 2})
    assert words in str(err.value)


@pytest.mark.parametrize("name, cls", [("cmaes", optuna.samplers.CmaEsSampler), ("gp", optuna.samplers.GPSampler)])
def test_model_based_samplers_improve_on_a_quadratic(name, cls):
    """cmaes and gp really run under ask/tell and move towards the optimum of a smooth score."""
    c = cfg(sampler={"name": name})
    sampler = make_sampler(c, 0)
    assert isinstance(sampler, cls)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(24):
        trial, free = ask_params(study, c)
        study.tell(trial, -((free["G"] - 1.7) ** 2) - (free["w_plus"] - 1.4) ** 2)
    values = [t.value for t in study.trials]
    assert max(values[12:]) > max(values[:6])
    assert study.best_value > -0.05


def test_fail_reasons_are_counted_by_kind():
    from explorer.search.studies import reason_kind

    assert reason_kind("fic did not converge: fixed point unstable (max Re eig = 0.00122 /ms)") == \
        "fic did not converge: fixed point unstable"
    assert reason_kind("fic did not converge: excitation too weak for the target (J_I < 0 at 3 regions)") == \
        "fic did not converge: excitation too weak for the target"
    assert reason_kind("refused: J_NMDA = J_NMDA.base + J_NMDA.scale * map spans [-0.05, 0.05]") == "refused: J_NMDA"
    assert reason_kind("non-finite score: fc_r (constant or flat BOLD)") == "non-finite score: fc_r"
    assert reason_kind("diverged") == "diverged" and reason_kind("actor died") == "actor died"
