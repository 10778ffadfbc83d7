"""Two drivers, one study on PostgreSQL: they split the subjects through the leases and finish exact counts."""

from __future__ import annotations

from collections import defaultdict

import pytest

from cluster_helpers import (
    assert_exact, cluster_env, explorer, launch_explorer, optuna_trials, study_config, verify, verify_ok,
    write_config,
)

pytestmark = pytest.mark.cluster

SUBJECTS = ["NAP_001", "NAP_002", "NAP_007", "NAP_009"]


def test_two_drivers_on_one_postgres_study_split_the_subjects(postgres_server, mlflow_server, ray_cluster, tmp_path):
    from explorer.search import open_storage
    from explorer.search.leases import current_leases

    trials = 6
    # one actor each (the cluster has two 1-CPU nodes); each driver holds 2 subjects at a time
    cfg = study_config("two_drivers", subjects=SUBJECTS, trials=trials, ray={"actors": 1},
                       leases={"window": 2})
    mlflow_server.wait_healthy()
    optuna_url, _ = postgres_server
    env = cluster_env(ray_cluster, optuna_url, mlflow_server.uri)
    command = ["run", str(write_config(tmp_path, cfg)), "--no-progress"]
    drivers = [launch_explorer(command, env, tmp_path, tmp_path / f"driver{i}.log") for i in range(2)]
    codes = [d.wait(timeout_s=400) for d in drivers]
    assert codes == [0, 0], "\n\n".join(d.output for d in drivers)

    all_trials = optuna_trials(optuna_url, cfg)
    assert_exact(all_trials, SUBJECTS, trials)       # exact counts, no parameter set evaluated twice
    # each subject was run by one driver (the actors' names carry their driver's pool), and both drivers ran some
    pools = defaultdict(set)
    for sid, ts in all_trials.items():
        for t in ts:
            pools[t.user_attrs["actor"].rsplit("-", 1)[0]].add(sid)
    assert len(pools) == 2, dict(pools)
    assert sorted(s for subjects in pools.values() for s in subjects) == SUBJECTS, dict(pools)
    assert "left to the other driver(s) running them" in "\n".join(d.output for d in drivers)
    # every lease is released (deleted), and the three records agree
    assert current_leases(open_storage(optuna_url), cfg["name"]) == {}
    verify_ok(verify(cfg["name"], env, tmp_path), trials * len(SUBJECTS))
    status = explorer(["status", cfg["name"], "--studies-dir", str(tmp_path / "studies")], env, tmp_path)
    assert status.returncode == 0 and "running:" not in status.stdout, status.stdout + status.stderr
