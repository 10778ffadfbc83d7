"""cluster/slurm/explorer.sbatch on a real SLURM cluster of two 1-CPU nodes on this machine
(:class:`~slurm_helpers.SlurmCluster`; `make test` installs SLURM with cluster/install_slurm.sh).

* a 2-node job: a Ray head and a Ray worker started with srun, one driver; exact counts, `explorer verify`;
* a 2-task job array on one study: the drivers split the subjects through the leases; stopped mid-sweep
  with ``scancel --batch --signal=TERM`` (the script forwards it to the driver, as SLURM's
  ``--signal=B:TERM@120`` before a time limit), then resubmitted with ``resume``: exact counts, no
  parameter set evaluated twice, `explorer verify` ok.

Embedded storage only (journal, SQLite MLflow, zarr in the study folder), as on a cluster's shared file system.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

from cluster_helpers import BIN, assert_exact, count_complete, optuna_trials, study_config, verify, verify_ok, write_config
from slurm_helpers import SlurmCluster, missing_prerequisite

pytestmark = pytest.mark.cluster

SBATCH = Path(__file__).resolve().parents[2] / "cluster" / "slurm" / "explorer.sbatch"
SUBJECTS = ["NAP_001", "NAP_002"]


@pytest.fixture(scope="module")
def slurm():
    why = missing_prerequisite()
    if why:
        pytest.skip(why)
    cluster = SlurmCluster(nodes=2, cpus=1)
    try:
        yield cluster.start()
    finally:
        cluster.close()


def _env() -> dict[str, str]:
    """The submitting shell: explorer's environment first on PATH, no Ray address nor storage servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPLORER_", "RAY_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _output(tmp_path: Path) -> str:
    return "\n".join(f"== {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("job-*.out")))


def _journal(tmp_path: Path, name: str) -> str:
    return str(tmp_path / "studies" / name / "optuna.log")


def test_a_two_node_job_runs_a_study_to_exact_counts(slurm, tmp_path):
    trials = 4
    cfg = study_config("slurm_job", subjects=SUBJECTS, trials=trials, ray={"actors": None, "batch_size": 2})
    config = write_config(tmp_path, cfg)
    job = slurm.sbatch(["--nodes=2", f"--output={tmp_path}/job-%j.out", str(SBATCH), "run", str(config)],
                       _env(), tmp_path)
    states = slurm.wait_job(job, timeout_s=400)
    out = _output(tmp_path)
    assert states == {job: ("COMPLETED", "0:0")}, out + slurm.logs()
    assert "2 Ray nodes, 2 CPUs" in out, out            # the head and the worker (srun) joined before the driver
    assert_exact(optuna_trials(_journal(tmp_path, cfg["name"]), cfg), SUBJECTS, trials)
    verify_ok(verify(cfg["name"], _env(), tmp_path), trials * len(SUBJECTS))


def _actor_pools(trials: dict[str, list]) -> dict[str, set[str]]:
    """{driver's actor pool: the subjects whose trials it ran} (an actor's name carries its driver's pool)."""
    pools = defaultdict(set)
    for sid, ts in trials.items():
        for t in ts:
            if "actor" in t.user_attrs:
                pools[t.user_attrs["actor"].rsplit("-", 1)[0]].add(sid)
    return dict(pools)


def test_an_array_splits_the_subjects_and_a_terminated_array_resumes_to_exact_counts(slurm, tmp_path):
    trials = 40
    # each driver holds one subject at a time: two drivers, two subjects, one each. Trials of 60000
    # steps (dt 20 ms, ~1 s each): a driver's subject must outlast the other driver's start-up (~15-25 s)
    cfg = study_config("slurm_array", subjects=SUBJECTS, trials=trials, leases={"window": 1},
                       ray={"actors": None, "batch_size": 1}, simulation={"dt_ms": 20, "duration_s": 1200})
    config = write_config(tmp_path, cfg)
    journal = _journal(tmp_path, cfg["name"])
    array = slurm.sbatch(["--array=0-1", f"--output={tmp_path}/job-%A_%a.out", str(SBATCH), "run", str(config)],
                         _env(), tmp_path)

    # mid-sweep: both subjects under way, neither finished; then SIGTERM to each task's batch shell
    deadline = time.monotonic() + 300
    while True:
        done = {sid: sum(t.state.name == "COMPLETE" for t in ts)
                for sid, ts in (optuna_trials(journal, cfg) if os.path.exists(journal) else {}).items()}
        if len(done) == 2 and min(done.values()) >= 1:
            break
        assert time.monotonic() < deadline, f"no trials of both subjects within 300 s: {done}\n{_output(tmp_path)}"
        assert slurm.jobs(), f"the array ended before it was stopped: {done}\n{_output(tmp_path)}"
        time.sleep(0.5)
    slurm.scancel("--batch", "--signal=TERM", array)
    states = slurm.wait_job(array, timeout_s=120)
    out = _output(tmp_path)
    assert len(states) == 2 and all(s == "FAILED" and code == "130:0" for s, code in states.values()), (
        f"{states}\n{out}")                            # exit 130: interrupted, as after Ctrl-C
    assert out.count("explorer.sbatch: SIGTERM: stopping the driver") == 2 and out.count("interrupted (SIGTERM)") == 2, out

    before = optuna_trials(journal, cfg)
    assert sum(t.state.name == "COMPLETE" for ts in before.values() for t in ts) < trials * len(SUBJECTS)
    pools = _actor_pools(before)
    # the two drivers split the subjects: each ran one, none ran both
    assert sorted(len(s) for s in pools.values()) == [1, 1] and set.union(*pools.values()) == set(SUBJECTS), pools

    job = slurm.sbatch([f"--output={tmp_path}/job-%j.out", str(SBATCH), "resume", cfg["name"],
                        "--studies-dir", str(tmp_path / "studies")], _env(), tmp_path)
    states = slurm.wait_job(job, timeout_s=400)
    assert states == {job: ("COMPLETED", "0:0")}, _output(tmp_path)
    after = optuna_trials(journal, cfg)
    states_by_subject = assert_exact(after, SUBJECTS, trials)   # no parameter set evaluated twice
    assert any(c.get("FAIL interrupted") for c in states_by_subject.values()), states_by_subject
    assert count_complete(journal, cfg) == trials * len(SUBJECTS)
    verify_ok(verify(cfg["name"], _env(), tmp_path), trials * len(SUBJECTS))
