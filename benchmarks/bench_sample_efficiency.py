"""Sample efficiency: trials needed to reach 95% of the final best FC r per subject, TPE vs random.

Runs the same study config twice on the same budget, once with each sampler (``sampler.name``
replaced, same seed), in a temporary folder (or ``--keep DIR``), and prints JSON::

    .venv/bin/python benchmarks/bench_sample_efficiency.py experiments/quickstart.yaml --trials 40

Per subject and sampler: the best FC r, and the 1-based trial index (in completion order) at which
the running best first reached 95% of that sampler's final best. Lower is better.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path


def trials_to_fraction(values: list[float], fraction: float = 0.95, maximise: bool = True) -> int | None:
    """1-based index at which the running best first reaches ``fraction`` of the final best."""
    finite = [v for v in values if v == v]
    if not finite:
        return None
    final = max(finite) if maximise else min(finite)
    target = fraction * final if maximise else final / fraction
    best = None
    for i, v in enumerate(values, 1):
        if v == v:
            best = v if best is None else (max(best, v) if maximise else min(best, v))
        if best is not None and (best >= target if maximise else best <= target):
            return i
    return None


def study_curves(study_dir: Path) -> dict[str, list[float]]:
    """subject -> objective values of its trials in number order (NaN for failed trials)."""
    from optuna.trial import TrialState

    from explorer.config import load_frozen, optuna_storage_url
    from explorer.search import list_subject_studies, open_storage, open_subject_study

    cfg = load_frozen(study_dir)
    storage = open_storage(optuna_storage_url(cfg, study_dir))
    out = {}
    for sid in list_subject_studies(storage, cfg.name):
        trials = open_subject_study(storage, cfg, sid, create=False).get_trials(deepcopy=False)
        out[sid] = [t.values[0] if t.state == TrialState.COMPLETE else float("nan")
                    for t in sorted(trials, key=lambda t: t.number)
                    if t.user_attrs.get("reason") != "interrupted"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--trials", type=int, default=None, help="budget per subject (default: the config's)")
    ap.add_argument("--actors", type=int, default=None)
    ap.add_argument("--samplers", nargs="+", default=["tpe", "random"])
    ap.add_argument("--keep", default=None, metavar="DIR", help="keep the studies in DIR")
    args = ap.parse_args(argv)

    from explorer.config import load_config
    from explorer.runner.driver import run_study

    with tempfile.TemporaryDirectory(prefix="bench_eff_") as tmp:
        root = Path(args.keep or tmp)
        result: dict[str, dict] = {}
        for name in args.samplers:
            cfg = load_config(args.config, trials=args.trials, name=f"eff_{name}", studies_dir=str(root),
                              **{"sampler.name": name, "store.mode": "none"})
            run_study(cfg, live=False, actors=args.actors)
            curves = study_curves(cfg.study_dir)
            maximise = cfg.directions[0] == "maximize"
            per = {sid: {"best": max((v for v in vals if v == v), default=None),
                         "trials_to_95pct": trials_to_fraction(vals, 0.95, maximise)}
                   for sid, vals in curves.items()}
            reached = [p["trials_to_95pct"] for p in per.values() if p["trials_to_95pct"] is not None]
            result[name] = {"subjects": per, "median_trials_to_95pct": statistics.median(reached) if reached else None,
                            "median_best": statistics.median(p["best"] for p in per.values() if p["best"] is not None)}
    print(json.dumps({"config": args.config, "trials": cfg.n_trials, "samplers": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
