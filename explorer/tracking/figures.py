"""The parent run's figures. Built on ``matplotlib.figure.Figure`` (Agg canvas): no pyplot,
no global backend change, nothing imported until a figure is drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from explorer.tracking.summary import EcSummary, SubjectSummary


def _figure(width: float, height: float, **margins: float):
    """A Figure on an Agg canvas, its subplot margins fixed (fractions of the figure): a layout engine
    (constrained) draws each figure twice over, 1.7-2x the time, on the tracker's thread."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(**{"left": 0.12, "right": 0.96, "bottom": 0.13, "top": 0.9, **margins})
    FigureCanvasAgg(fig)
    return fig


def _side_by_side(left: np.ndarray, right: np.ndarray, titles: tuple[str, str], labels: tuple[str, str],
                  cmap: str, limits: tuple[float, float], bar: str, title: str):
    """Two region x region matrices side by side on one colour scale ``limits``, one colour bar."""
    fig = _figure(9.0, 4.2, left=0.06, right=0.86, bottom=0.12, top=0.86, wspace=0.3)
    for ax, mat, name in zip(fig.subplots(1, 2), (left, right), titles):
        im = ax.imshow(mat, cmap=cmap, vmin=limits[0], vmax=limits[1], interpolation="nearest")
        ax.set_title(name)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
    fig.colorbar(im, cax=fig.add_axes((0.89, 0.17, 0.015, 0.62)), label=bar)
    fig.suptitle(title)
    return fig


def _score(name: str, value: float | None) -> str:
    return f"  ({name} = {value:.3f})" if value is not None and np.isfinite(value) else ""


def fc_figure(emp_fc: np.ndarray, sim_fc: np.ndarray, subject: str = "", score: float | None = None):
    """Empirical vs best simulated FC (region x region), side by side on one colour scale."""
    emp, sim = np.asarray(emp_fc, dtype=float), np.asarray(sim_fc, dtype=float)
    lim = float(np.nanmax(np.abs(np.concatenate([emp[~np.eye(len(emp), dtype=bool)],
                                                  sim[~np.eye(len(sim), dtype=bool)]])))) if emp.size > 1 else 1.0
    lim = lim if np.isfinite(lim) and lim > 0 else 1.0
    return _side_by_side(emp, sim, ("empirical FC", "best simulated FC"), ("region", "region"), "RdBu_r", (-lim, lim),
                         "Pearson r", f"{subject}{_score('FC r', score)}")


def fcd_figure(emp_fcd_values: np.ndarray, sim_fcd_values: np.ndarray, subject: str = "",
               ks: float | None = None):
    """FCD value distributions (upper triangles of the FCD matrices), empirical vs best simulated."""
    fig = _figure(6.0, 4.0)
    ax = fig.subplots()
    bins = np.linspace(-1.0, 1.0, 41)
    for vals, label in ((emp_fcd_values, "empirical"), (sim_fcd_values, "best simulated")):
        v = np.asarray(vals, dtype=float).ravel()
        v = v[np.isfinite(v)]
        if v.size:
            ax.hist(v, bins=bins, density=True, histtype="stepfilled", alpha=0.5, label=label)
    ax.set_xlabel("FCD value (correlation between FC windows)")
    ax.set_ylabel("density")
    ax.legend()
    ax.set_title(f"{subject} FCD distributions" + (f"  (KS = {ks:.3f})" if ks is not None and np.isfinite(ks) else ""))
    return fig


def convergence_figure(scores: Sequence[float], objective: str = "fc_r", maximise: bool = True,
                       subject: str = "", numbers: Sequence[int] | None = None):
    """Score per trial (dots) and the best so far (line) against the trial number."""
    s = np.asarray(scores, dtype=float)
    x = np.asarray(numbers if numbers is not None else np.arange(len(s)), dtype=float)
    order = np.argsort(x, kind="stable")
    x, s = x[order], s[order]
    fig = _figure(6.0, 4.0)
    ax = fig.subplots()
    ok = np.isfinite(s)
    ax.plot(x[ok], s[ok], ".", alpha=0.5, label="trial")
    if ok.any():
        filled = np.where(ok, s, -np.inf if maximise else np.inf)
        best = np.maximum.accumulate(filled) if maximise else np.minimum.accumulate(filled)
        shown = np.isfinite(best)
        ax.step(x[shown], best[shown], where="post", label="best so far")
    ax.set_xlabel("trial number")
    ax.set_ylabel(objective)
    ax.legend()
    ax.set_title(f"{subject} convergence")
    return fig


def summary_figures(summary: SubjectSummary, history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """File name -> Figure of a finished subject's parent run: ``fc_empirical_vs_best.png`` and
    ``fcd_distributions.png`` where ``summary.arrays`` has both of their arrays, and
    ``convergence.png`` (the first objective of ``history``, as ``SubjectSummary.history``) where
    there is a COMPLETE trial."""
    a, sid, scores = summary.arrays, summary.subject, summary.best_scores
    out: dict[str, Any] = {}
    if a.emp_fc is not None and a.best_fc is not None:
        out["fc_empirical_vs_best.png"] = fc_figure(a.emp_fc, a.best_fc, sid, scores.get(summary.objective))
    if a.emp_fcd_values is not None and a.best_fcd_values is not None:
        out["fcd_distributions.png"] = fcd_figure(a.emp_fcd_values, a.best_fcd_values, sid, scores.get("fcd_ks"))
    if history:
        out["convergence.png"] = convergence_figure([float(h["values"][0]) for h in history], summary.objective,
                                                    summary.maximise, sid, [int(h["number"]) for h in history])
    return out


def ec_figure(sc: np.ndarray, ec: np.ndarray, subject: str = "", fc_r: float | None = None):
    """The SC the EC fit started from and the fitted EC (region x region, ``[i, j]``: j -> i), side by side
    on one colour scale (the larger of the two maxima)."""
    sc, ec = np.asarray(sc, dtype=float), np.asarray(ec, dtype=float)
    vmax = float(np.nanmax([np.nanmax(sc), np.nanmax(ec)])) if sc.size else 1.0
    vmax = vmax if np.isfinite(vmax) and vmax > 0 else 1.0
    return _side_by_side(sc, ec, ("SC (start)", "fitted EC"), ("source region j", "target region i"), "viridis",
                         (0.0, vmax), "connection strength", f"{subject}{_score('analytic FC r', fc_r)}")


def ec_trace_figure(trace: np.ndarray, subject: str = "", best: int | None = None):
    """The EC fit trace: loss (log scale) and the FC / lagged-covariance correlations per iteration."""
    trace = np.asarray(trace, dtype=float)
    fig = _figure(9.0, 3.8, wspace=0.3)
    ax1, ax2 = fig.subplots(1, 2)
    it = np.arange(trace.shape[0])
    ax1.semilogy(it, trace[:, 0])
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("loss")
    ax2.plot(it, trace[:, 1], label="FC r")
    ax2.plot(it, trace[:, 2], label="lagged cov. r")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("correlation with the empirical")
    ax2.legend()
    if best is not None:
        for ax in (ax1, ax2):
            ax.axvline(best, color="0.5", lw=0.8, ls="--")
    fig.suptitle(f"{subject} EC fit")
    return fig


def ec_figures(ec: EcSummary) -> dict[str, Any]:
    """File name -> Figure of a subject's EC fit: ``ec_vs_sc.png`` and ``ec_trace.png``."""
    s = ec.summary
    return {"ec_vs_sc.png": ec_figure(ec.sc, ec.weights, ec.subject, s.get("fc_r")),
            "ec_trace.png": ec_trace_figure(ec.trace, ec.subject, s.get("best_iteration"))}
