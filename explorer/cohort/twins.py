"""Synthetic twins: subjects whose "empirical" BOLD is simulated from a real connectome with known
parameters, for parameter-recovery tests and the report. The ground truth is in the phenotype."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from explorer.errors import CohortError
from explorer.models import get_model
from explorer.scoring.options import FeatureOptions
from explorer.sim import simulate
from explorer.sim.settings import RunSettings

from . import demo
from .types import Cohort, CohortOptions
from .validation import RawSubject, build_cohort, refuse_if_bad

log = logging.getLogger("explorer.cohort")
_D = RunSettings()  # the one set of run-settings defaults


def synthetic(
    model: str = "rww_ei",
    n_subjects: int | None = None,
    truth: Sequence[Mapping[str, Any]] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    fixed: Mapping[str, Any] | None = None,
    base: Cohort | None = None,
    duration_s: float = _D.duration_s,
    dt_ms: float = _D.dt_ms,
    velocity: float = _D.velocity,
    noise_sigma: float = _D.noise_sigma,
    seed: int = 0,
    bold_tr_s: float = 2.0,
    transient_s: float = _D.transient_s,
    features: FeatureOptions | None = None,
    id_prefix: str = "twin",
    **sim_kwargs: Any,
) -> Cohort:
    """Make a cohort of synthetic twins with `explorer.sim.simulate`.

    model: model name. truth: one dict of parameter values per subject (e.g. ``[{"G": 1.2}]``);
    when None, ``n_subjects`` (default 3) sets of values are drawn uniformly within ``bounds``
    (name -> (low, high); default: the model's search bounds of ``G``) from
    ``np.random.default_rng(seed)``. fixed: values shared by every subject (truth wins).
    base: the cohort whose connectomes (weights as already normalised, lengths in mm, labels) are
    used, cycled over the subjects; default :func:`explorer.cohort.demo`.
    duration_s, dt_ms, velocity (m/s), noise_sigma, bold_tr_s, transient_s and any other
    ``sim_kwargs`` go to ``simulate``; subject i is simulated with seed ``seed + i``. The run
    settings default to :class:`~explorer.sim.settings.RunSettings`'s (a study's); the TR to 2 s.
    features: FeatureOptions for the twins' FC/FCD (default: the base cohort's).

    Subject ids are ``f"{id_prefix}{i:02d}"``; phenotype holds ``true_<param>`` for every truth
    value, plus ``model``, ``base_subject`` and ``sim_seed``. Raises CohortError when a twin's
    simulation diverges (choose other values).
    """
    if base is None:
        base = demo()
    if len(base) == 0:
        raise CohortError("synthetic(): the base cohort has no subject")
    if truth is not None:
        truth = [dict(t) for t in truth]
        if n_subjects is not None and n_subjects != len(truth):
            raise CohortError(f"synthetic(): n_subjects={n_subjects} but {len(truth)} truth dicts were given")
    else:
        n = 3 if n_subjects is None else int(n_subjects)
        if n < 1:
            raise CohortError(f"synthetic(): n_subjects must be >= 1, got {n}")
        if bounds is None:
            g = get_model(model).param("G")
            bounds = {"G": (g.low, g.high)}
        rng = np.random.default_rng(seed)
        names = sorted(bounds)
        truth = [{k: float(rng.uniform(*bounds[k])) for k in names} for _ in range(n)]
    fixed = dict(fixed or {})
    fopts = features if features is not None else base.options.features

    raws: list[RawSubject] = []
    for i, true in enumerate(truth):
        b = base.subjects[i % len(base)]
        params = {**fixed, **true}
        sim_seed = int(seed) + i
        ds = simulate(model, b.weights, b.lengths, [params], duration_s=duration_s, dt_ms=dt_ms,
                      velocity=velocity, noise_sigma=noise_sigma, seed=[sim_seed], tavg_ms=None,
                      bold_tr_s=bold_tr_s, transient_s=transient_s, labels=list(b.labels), **sim_kwargs)
        if bool(np.asarray(ds["diverged"].values)[0]):
            raise CohortError(
                f"synthetic twin {i} ({model}, params {params}, seed {sim_seed}) on the connectome of "
                f"{b.id} diverged: choose other truth values or bounds"
            )
        bold = np.asarray(ds["bold"].values[0], dtype=np.float64)
        sid = f"{id_prefix}{i:02d}"
        pheno: dict[str, Any] = {
            f"true_{k}": (np.asarray(v).tolist() if np.ndim(v) else float(v)) for k, v in true.items()
        }
        pheno.update(model=model, base_subject=b.id, sim_seed=sim_seed)
        raws.append(RawSubject(
            id=sid, origin=f"synthetic twin {i}", weights=b.weights, lengths=b.lengths, labels=list(b.labels),
            bold=bold, bold_time_major=True, tr_s=float(bold_tr_s), phenotype=pheno,
            sources={
                "weights": f"{b.id} of {base.source} ({b.sources.get('weights', '?')})",
                "lengths": f"{b.id} of {base.source} ({b.sources.get('lengths', '?')})",
                "labels": b.sources.get("labels", f"{b.id} of {base.source}"),
                "bold": (f"simulated: model={model} params={params} seed={sim_seed} duration_s={duration_s} "
                         f"dt_ms={dt_ms} velocity={velocity} noise_sigma={noise_sigma} "
                         f"transient_s={transient_s} bold_tr_s={bold_tr_s}"),
            },
        ))
        log.info("synthetic twin %s: %s on %s, BOLD %s", sid, params, b.id, bold.shape)
    # the base connectomes are already selected and normalised: nothing more is changed
    options = CohortOptions(drop=[], normalise="none", zero_diagonal=False, symmetrise=False,
                            tr_s=float(bold_tr_s), features=fopts)
    return refuse_if_bad(build_cohort(raws, options, source=f"synthetic({model}, seed={seed})"))
