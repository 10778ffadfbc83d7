"""Sample efficiency: trials needed to reach 95% of the final best FC r per subject, TPE vs random.

Runs the same study config twice on the same budget, once with each sampler (``sampler.name``
replaced, same seed), in a temporary folder (or ``--keep DIR``), and prints JSON::

    .venv/bin/python benchmarks/bench_sample_efficiency.py experiments/quickstart.yaml --trials 40

Per subject and sampler: the best FC r; ``trials_to_95pct``, the 1-based trial index (in trial
number order) at which the running best first reached 95% of that sampler's own final best; and
``trials_to_95pct_common``, the same against 95% of the best that *any* sampler found for the
subject (null when never reached): the fairer comparison, since a weak sampler reaches 95% of its
own weak best early. Lower is better.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path


def trials_to_fraction(values: list[float], fraction: float = 0.95, maximise: bool = True,
                       final: float | None = None) -> int | None:
    """1-based index at which the running best first reaches ``fraction`` of ``final``.

    ``final`` defaults to the best of ``values`` itself.
    """
    finite = [v for v in values if v == v]
    if not finite:
        return None
    if final is None:
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

    from explorer.layout import optuna_storage_url
    from explorer.search import list_subject_studies, open_storage, open_subject_study
    from explorer.study.frozen import load_frozen

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
        curves_of: dict[str, dict[str, list[float]]] = {}
        for name in args.samplers:
            base = load_config(args.config)
            # the config's sampler options belong to its own sampler; other samplers run on their defaults
            options = base.sampler.options if name == base.sampler.name else {}
            cfg = load_config(args.config, trials=args.trials, name=f"eff_{name}", studies_dir=str(root),
                              **{"sampler.name": name, "sampler.options": options, "store.mode": "none"})
            run_study(cfg, actors=args.actors)
            curves = curves_of[name] = study_curves(cfg.study_dir)
            maximise = cfg.directions[0] == "maximize"
            per = {sid: {"best": max((v for v in vals if v == v), default=None),
                         "trials_to_95pct": trials_to_fraction(vals, 0.95, maximise)}
                   for sid, vals in curves.items()}
            reached = [p["trials_to_95pct"] for p in per.values() if p["trials_to_95pct"] is not None]
            result[name] = {"subjects": per, "median_trials_to_95pct": statistics.median(reached) if reached else None,
                            "median_best": statistics.median(p["best"] for p in per.values() if p["best"] is not None)}
        pick = max if maximise else min
        for sid in curves:
            common = pick(r["subjects"][sid]["best"] for r in result.values() if r["subjects"][sid]["best"] is not None)
            for name, r in result.items():
                r["subjects"][sid]["trials_to_95pct_common"] = trials_to_fraction(curves_of[name][sid], 0.95,
                                                                                   maximise, final=common)
        for r in result.values():
            reached = [p["trials_to_95pct_common"] for p in r["subjects"].values()
                       if p["trials_to_95pct_common"] is not None]
            r["median_trials_to_95pct_common"] = statistics.median(reached) if reached else None
            r["subjects_reaching_95pct_common"] = len(reached)
    print(json.dumps({"config": args.config, "trials": cfg.n_trials, "samplers": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
