"""Better twins, side by side: fit each setting to a cohort, re-simulate the best twins, judge them.

Runs each study config given (default: the four ``experiments/gw_rww_*.yaml`` settings) as a real
study (Optuna on Ray actors), then ``explorer report`` on it, and prints one JSON line per
(setting, sampler) as it finishes, then the whole table:

- the search's best objective, median over subjects (optimistic: the best of a noisy search);
- the report's re-simulation of each subject's best parameters with ``--seeds`` fresh noise seeds:
  median FC r and median FCD KS (the honest fit figures);
- the individuality of the same twins: raw and residual identification accuracy (chance = 1/n)
  and I_diff;
- trials per subject, free parameters, sampler, the share of trials that failed (and why), wall
  time, and the CPU.

    .venv/bin/python benchmarks/bench_twins.py --trials 80
    .venv/bin/python benchmarks/bench_twins.py experiments/gw_rww_fic_map.yaml --samplers tpe cmaes gp
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ["gw_rww_homogeneous", "gw_rww_fic", "gw_rww_fic_map", "gw_rww_fic_groups"]


def cpu() -> str:
    """The CPU model and its widest vector extension (the simulator's speed depends on it)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln for ln in info.splitlines() if ln.startswith("flags")), "")
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{model} ({simd})"


def run_one(path: Path, sampler: str, trials: int | None, seeds: int, studies: Path, actors: int | None,
            duration_s: float | None) -> dict:
    from explorer.config import load_config
    from explorer.layout import optuna_storage_url
    from explorer.report.commands import create_report
    from explorer.runner.driver import run_study
    from explorer.search import list_subject_studies, open_storage, open_subject_study
    from explorer.study.frozen import save_frozen

    overrides = {"studies_dir": str(studies), "sampler.name": sampler, "trials": trials,
                 "simulation.duration_s": duration_s}
    cfg = load_config(path, **overrides)
    cfg = cfg.model_copy(update={"name": f"{cfg.name}-{sampler}"})
    if sampler != "tpe":
        cfg.sampler.options = {}
    save_frozen(cfg)
    t0 = time.perf_counter()
    result = run_study(cfg, actors=actors)
    study_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    report, _, _ = create_report(cfg.study_dir, seeds=seeds, actors=actors, mlflow=False)
    report_s = time.perf_counter() - t1
    storage = open_storage(optuna_storage_url(cfg, cfg.study_dir))
    states, reasons = Counter(), Counter()
    for sid in list_subject_studies(storage, cfg.name):
        for t in open_subject_study(storage, cfg, sid, create=False).get_trials(deepcopy=False):
            states[t.state.name] += 1
            if t.state.name == "FAIL":
                reasons[str(t.user_attrs.get("reason", "")).split(":")[0]] += 1
    ind = report["individuality"] or {}
    res = ind.get("residual") or {}
    return {
        "setting": path.stem, "model": cfg.model, "sampler": sampler, "objective": cfg.objectives[0],
        "free_params": len(cfg.params.free), "fic": cfg.params.fic,
        "maps": dict(cfg.params.maps), "groups": dict(cfg.params.groups),
        "subjects": len(report["subjects"]), "trials_per_subject": cfg.n_trials,
        "search_best_median": report["summary"]["best_score_median"],
        "resim_seeds": seeds,
        "fc_r_resim_median": report["summary"]["fc_r_resim_median"],
        "fcd_ks_resim_median": report["summary"]["fcd_ks_resim_median"],
        "identification_accuracy": ind.get("accuracy"), "i_diff": ind.get("i_diff"),
        "residual_accuracy": res.get("accuracy"), "residual_i_diff": res.get("i_diff"),
        "residual_p_value": res.get("p_value"),
        "trials": dict(states), "fail_reasons": dict(reasons),
        "best_params": {s: report["fit"][s]["best_params"] for s in report["subjects"]},
        "study_wall_s": round(study_s, 1), "report_wall_s": round(report_s, 1),
        "actors": result.actors, "batch_size": cfg.ray.batch_size, "dt_ms": cfg.simulation.dt_ms,
        "duration_s": cfg.simulation.duration_s, "cpu": cpu(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="*", help="study configs (default: the four experiments/gw_rww_*.yaml)")
    ap.add_argument("--samplers", nargs="+", default=["tpe"], choices=["tpe", "cmaes", "gp", "random", "qmc"])
    ap.add_argument("--trials", type=int, default=None, help="trials per subject (default: the config's)")
    ap.add_argument("--duration-s", type=float, default=None, help="simulated seconds (default: the config's)")
    ap.add_argument("--seeds", type=int, default=5, help="fresh noise seeds of the re-simulations")
    ap.add_argument("--actors", type=int, default=None)
    ap.add_argument("--studies", default="/tmp/bench_twins", help="where the study folders go")
    ap.add_argument("--out", default=None, help="also write the table to this JSON file")
    args = ap.parse_args(argv)
    paths = [Path(c) for c in args.configs] or [ROOT / "experiments" / f"{n}.yaml" for n in DEFAULT]
    rows = []
    for path in paths:
        for sampler in args.samplers:
            row = run_one(path, sampler, args.trials, args.seeds, Path(args.studies), args.actors, args.duration_s)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps(rows, indent=1))
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
