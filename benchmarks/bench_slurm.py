"""SLURM figures of docs/slurm.md, on a one-machine SLURM cluster of two 1-CPU nodes (as tests/cluster/test_slurm.py).

    .venv/bin/python benchmarks/bench_slurm.py            # as root, after cluster/install_slurm.sh; prints JSON

* ``first_trial_s``: from ``sbatch`` to the first trial's start (Optuna's datetime_start) and completion,
  for a 1-node job (Ray local to the driver) and a 2-node job (Ray head + worker started with srun);
* ``trials_per_min``: one 2-node job (one driver, 2 actors) against a 2-task array (two drivers of one
  actor each, one study, subject leases), each from its first trial's start to its last trial's end,
  and from sbatch to the end of the job(s);
* ``journal``: fsync/fdatasync calls per trial of a driver and everything it starts (local Ray
  included), counted with ``strace -f -y`` on a plain ``explorer run`` of the same study, split by
  file (the Optuna journal, MLflow's SQLite, the rest), plus the journal's appends (lines) per trial.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "cluster"), str(ROOT / "tests")]   # the cluster tests' helpers

from cluster_helpers import BIN, optuna_trials, study_config, write_config  # noqa: E402
from slurm_helpers import SlurmCluster, missing_prerequisite  # noqa: E402

SBATCH = ROOT / "cluster" / "slurm" / "explorer.sbatch"
SUBJECTS = ["NAP_001", "NAP_002"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPLORER_", "RAY_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def _config(work: Path, name: str, trials: int, **over) -> tuple[dict, Path]:
    cfg = study_config(name, subjects=SUBJECTS, trials=trials, ray={"actors": None, "batch_size": 2},
                       simulation={"dt_ms": 20}, **over)
    return cfg, write_config(work, cfg)


def _span(cfg: dict, work: Path) -> dict:
    trials = [t for ts in optuna_trials(str(work / "studies" / cfg["name"] / "optuna.log"), cfg).values()
              for t in ts if t.state.name == "COMPLETE"]
    start = min(t.datetime_start.timestamp() for t in trials)
    first_done = min(t.datetime_complete.timestamp() for t in trials)
    end = max(t.datetime_complete.timestamp() for t in trials)
    return {"complete": len(trials), "first_start": start, "first_complete": first_done, "last_complete": end}


def _job(slurm: SlurmCluster, work: Path, sbatch_args: list[str], command: list[str], cfg: dict) -> dict:
    t0 = time.time()
    job = slurm.sbatch([*sbatch_args, f"--output={work}/job-%A_%a.out" if "--array" in " ".join(sbatch_args)
                        else f"--output={work}/job-%j.out", str(SBATCH), *command], _env(), work)
    states = slurm.wait_job(job, timeout_s=1200)
    t_end = time.time()
    if not all(s == "COMPLETED" for s, _ in states.values()):
        sys.exit(f"job {job}: {states}\n" + "\n".join(p.read_text() for p in work.glob("job-*.out")))
    s = _span(cfg, work)
    sweep = s["last_complete"] - s["first_start"]
    sessions = [tuple(map(float, m)) for p in sorted(work.glob("job-*.out"))
                for m in re.findall(r"this session: (\d+) trials in ([\d.]+) s", p.read_text())]
    return {"drivers": [{"trials": int(n), "session_s": t, "trials_per_min": round(60 * n / t, 1)}
                        for n, t in sessions],
            "drivers_trials_per_min_sum": round(sum(60 * n / t for n, t in sessions), 1),
            "sbatch_to_first_trial_start_s": round(s["first_start"] - t0, 1),
            "sbatch_to_first_trial_complete_s": round(s["first_complete"] - t0, 1),
            "sbatch_to_end_s": round(t_end - t0, 1), "complete": s["complete"],
            "trials_per_min_sweep": round(60 * s["complete"] / sweep, 1),
            "trials_per_min_sbatch_to_end": round(60 * s["complete"] / (t_end - t0), 1)}


def journal_cost(work: Path, trials: int) -> dict:
    """fsyncs per trial of a plain `explorer run` (driver, local Ray and actors), counted by strace."""
    work.mkdir(parents=True, exist_ok=True)
    cfg, path = _config(work, "fsyncs", trials)
    trace = work / "strace.txt"
    subprocess.run(["strace", "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(trace),
                    str(BIN / "explorer"), "run", str(path), "--no-progress", "--actors", "2"],
                   env=_env(), cwd=work, check=True, capture_output=True)
    by_file: Counter = Counter()
    for line in trace.read_text().splitlines():
        m = re.search(r"f(?:data)?sync\(\d+<([^>]*)>", line)
        if m:
            f = m.group(1)
            by_file["optuna journal" if f.endswith("optuna.log") else "mlflow sqlite" if ".db" in f else
                    "zarr store" if ".zarr" in f else "other"] += 1
    n = trials * len(SUBJECTS)
    lines = sum(1 for _ in open(work / "studies" / cfg["name"] / "optuna.log"))
    return {"trials": n, "fsyncs": dict(by_file), "fsyncs_per_trial": {k: round(v / n, 2) for k, v in by_file.items()},
            "journal_appends": lines, "journal_appends_per_trial": round(lines / n, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20, help="trials per subject (2 subjects)")
    ap.add_argument("--only", nargs="+", default=["journal", "one_node_job", "two_node_job", "array_of_two"],
                    help="which measurements")
    args = ap.parse_args(argv)
    why = missing_prerequisite()
    if why:
        sys.exit(why)
    out: dict = {"date": time.strftime("%Y-%m-%d"), "load_average_before": os.getloadavg()}
    work = Path(tempfile.mkdtemp(prefix="bench_slurm"))
    if "journal" in args.only and shutil.which("strace"):
        out["journal"] = journal_cost(work / "strace", args.trials)
    slurm = SlurmCluster(nodes=2, cpus=1).start()
    try:
        for key, sbatch_args, over in (("one_node_job", ["--nodes=1"], {}),
                                       ("two_node_job", ["--nodes=2"], {}),
                                       ("array_of_two", ["--array=0-1"], {"leases": {"window": 1}})):
            if key not in args.only:
                continue
            d = work / key
            d.mkdir(parents=True)
            cfg, path = _config(d, key, args.trials, **over)
            out[key] = _job(slurm, d, sbatch_args, ["run", str(path)], cfg)
    finally:
        slurm.close()
        out["load_average_after"] = os.getloadavg()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
