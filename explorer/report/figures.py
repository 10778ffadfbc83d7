"""Figures of the twin report: one function per PNG, ``fig_xxx(report, out_dir) -> [filenames]``.

Each function reads the report dict (the content of ``report.json``), writes its PNG into
``out_dir`` and returns the written filenames relative to ``out_dir``, or ``[]`` when its section is
absent. Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas: no pyplot global state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

__all__ = ["fig_fit_scores", "fig_fit_fc", "fig_fit_convergence", "fig_fit_landscape", "fig_individuality",
           "fig_baselines", "fig_cross_session", "fig_test_retest", "fig_recovery", "fig_phenotype", "FIGURES", "make_figures"]

DPI = 100
MAX_TICK_LABELS = 30  # subject ids on matrix axes up to this many subjects
OBJ_LABEL = {"fc_r": "fc_r (Pearson r of FC, unitless)", "fcd_ks": "fcd_ks (KS distance of FCD, unitless)"}


def _param_label(report: dict, name: str) -> str:
    """``name (unit)`` from the report's ``units`` (the model's parameter table)."""
    unit = (report.get("units") or {}).get(name)
    return f"{name} ({unit})" if unit else name


def _fig(w: float, h: float) -> Figure:
    return Figure(figsize=(w, h), dpi=DPI, layout="constrained")


def _save(fig: Figure, out_dir: Path, name: str) -> list[str]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / name, dpi=DPI)  # Figure without a manager: the Agg canvas; freed with the object
    return [name]


def _arr(x) -> np.ndarray:
    return np.array(x, dtype=float)  # None -> nan


def _subject_ticks(ax, ids: list[str], x: bool = True, y: bool = True) -> None:
    n = len(ids)
    if n > MAX_TICK_LABELS:
        return
    fs = 8 if n <= 12 else 6
    if x:
        ax.set_xticks(range(n), ids, rotation=90, fontsize=fs)
    if y:
        ax.set_yticks(range(n), ids, fontsize=fs)


def _heatmap(fig: Figure, ax, res: dict, ids: list[str], title: str, xlabel: str, ylabel: str) -> None:
    """Identification matrix: rows = twins, columns = subjects; diagonal boxed, each row's argmax marked."""
    m = _arr(res["matrix"])
    n = m.shape[0]
    im = ax.imshow(m, cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="similarity (Pearson r)")
    for i in range(n):
        ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="white", linewidth=1.5))
        if np.isfinite(m[i]).any():
            ax.plot(int(np.nanargmax(m[i])), i, marker="x", color="red", markersize=6, mew=1.5)
    acc = res.get("accuracy")
    acc = "n/a" if acc is None else f"{acc:.3f}"
    ax.set_title(f"{title}\naccuracy {acc} (x = row max, □ = own subject)", fontsize=9)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    _subject_ticks(ax, ids[:n] if len(ids) >= n else [str(i) for i in range(n)])


def fig_fit_scores(report: dict, out_dir: Path) -> list[str]:
    fit, ids = report.get("fit") or {}, [s for s in report.get("subjects", []) if s in (report.get("fit") or {})]
    if not ids:
        return []
    objs = [o for o in ("fc_r", "fcd_ks")
            if any((fit[s].get("resim") or {}).get(f"{o}_mean") is not None for s in ids)]
    if not objs:
        return []
    fig = _fig(max(7.0, 3.5 + 0.35 * len(ids)), 2.8 * len(objs))
    axes = fig.subplots(len(objs), 1, squeeze=False)[:, 0]
    x = np.arange(len(ids))
    for ax, o in zip(axes, objs):
        mean = _arr([(fit[s].get("resim") or {}).get(f"{o}_mean") for s in ids])
        sd = _arr([(fit[s].get("resim") or {}).get(f"{o}_sd") for s in ids])
        best = _arr([(fit[s].get("best_scores") or {}).get(o) for s in ids])
        ax.errorbar(x, mean, yerr=np.nan_to_num(sd), fmt="o", color="C0", capsize=3,
                    label=f"re-simulated mean ± sd ({report.get('seeds', '?')} seeds)")
        ax.plot(x, best, "o", mfc="none", color="C3", label="best score found by the search")
        med = np.nanmedian(mean) if np.isfinite(mean).any() else np.nan
        ax.axhline(med, color="grey", ls=":", lw=1, label=f"median of subject means {med:.3f}")
        ax.set_ylabel(OBJ_LABEL.get(o, o))
        ax.set_title(f"{o} per subject: re-simulated at the best parameters vs the search's best", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        if len(ids) <= MAX_TICK_LABELS:
            ax.set_xticks(x, ids, rotation=90, fontsize=7)
        ax.set_xlabel("subject")
    return _save(fig, out_dir, "fit_scores.png")


def fig_fit_fc(report: dict, out_dir: Path) -> list[str]:
    ex = report.get("fc_examples") or {}
    sids = list(ex)[:4]  # up to 4 subjects
    if not sids:
        return []
    mats = [(_arr(ex[s]["empirical"]), _arr(ex[s]["simulated"])) for s in sids]
    vmax = max(float(np.nanmax(np.abs(m))) for pair in mats for m in pair) or 1.0
    fig = _fig(6.8, 2.8 * len(sids) + 0.3)
    axes = fig.subplots(len(sids), 2, squeeze=False)
    for row, (s, pair) in enumerate(zip(sids, mats)):
        for col, (m, what) in enumerate(zip(pair, ("empirical", "simulated"))):
            ax = axes[row, col]
            im = ax.imshow(m, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            ax.set_title(f"{s}: {what}", fontsize=9)
            ax.set(xlabel="region", ylabel="region")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True)), ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(im, ax=axes, shrink=0.6, label="FC (Pearson r)")
    fig.suptitle("Empirical vs simulated FC (simulated = mean over re-simulation seeds)", fontsize=9)
    return _save(fig, out_dir, "fit_fc.png")


def fig_fit_convergence(report: dict, out_dir: Path) -> list[str]:
    fit = report.get("fit") or {}
    ids = [s for s in report.get("subjects", []) if (fit.get(s) or {}).get("convergence")]
    if not ids:
        return []
    obj = (report.get("objectives") or ["objective"])[0]
    fig = _fig(7.0, 4.0)
    ax = fig.subplots()
    for k, s in enumerate(ids):
        c, color = fit[s]["convergence"], f"C{k % 10}"
        ax.plot(c["number"], _arr(c["value"]), ".", color=color, alpha=0.25, markersize=4)
        ax.step(c["number"], _arr(c["best_so_far"]), where="post", color=color, lw=1.5,
                label=s if len(ids) <= 10 else None)
    ax.set(xlabel="trial number", ylabel=OBJ_LABEL.get(obj, obj))
    ax.set_title(f"Search convergence: best-so-far {obj} (lines) and every trial (dots)", fontsize=9)
    if len(ids) <= 10:
        ax.legend(fontsize=7, title="subject", title_fontsize=7)
    return _save(fig, out_dir, "fit_convergence.png")


def fig_fit_landscape(report: dict, out_dir: Path) -> list[str]:
    fit, free = report.get("fit") or {}, list(report.get("free_params") or [])
    ids = [s for s in report.get("subjects", []) if (fit.get(s) or {}).get("landscape")]
    if not ids or not free:
        return []
    obj = (report.get("objectives") or ["objective"])[0]
    land = {s: fit[s]["landscape"] for s in ids}
    if len(free) == 1:
        fig = _fig(6.0, 4.0)
        ax = fig.subplots()
        for k, s in enumerate(ids):
            ax.plot(_arr(land[s]["params"][free[0]]), _arr(land[s]["score"]), "o", ms=3, alpha=0.6,
                    color=f"C{k % 10}", label=s if len(ids) <= 10 else None)
        ax.set(xlabel=_param_label(report, free[0]), ylabel=OBJ_LABEL.get(obj, obj))
        ax.set_title(f"Landscape: {obj} of every trial vs {free[0]}", fontsize=9)
        if len(ids) <= 10:
            ax.legend(fontsize=7)
        return _save(fig, out_dir, "fit_landscape.png")
    if len(free) == 2:
        panels = [(s, free[0], free[1]) for s in ids[:4]]
        title = f"Landscape of {obj} over ({free[0]}, {free[1]}), first {len(panels)} subject(s); star = best trial"
    else:
        p = free[:3]
        panels = [(ids[0], p[i], p[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
        title = (f"Landscape of {obj} for subject {ids[0]} only: pairwise projections of the first 3 of "
                 f"{len(free)} free parameters ({', '.join(p)}); star = best trial")
    scores = np.concatenate([_arr(land[s]["score"]) for s, _, _ in panels])
    vmin, vmax = np.nanmin(scores), np.nanmax(scores)
    ncol = 2 if len(panels) == 4 else len(panels)
    nrow = -(-len(panels) // ncol)
    fig = _fig(3.6 * ncol + 1.0, 3.3 * nrow + 0.4)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, (s, px, py) in zip(axes, panels):
        sc = _arr(land[s]["score"])
        sca = ax.scatter(_arr(land[s]["params"][px]), _arr(land[s]["params"][py]), c=sc, cmap="viridis",
                         vmin=vmin, vmax=vmax, s=18, edgecolors="none")
        bp = fit[s].get("best_params") or {}
        if px in bp and py in bp:
            ax.plot(bp[px], bp[py], "*", color="red", ms=12, mec="black")
        ax.set(xlabel=_param_label(report, px), ylabel=_param_label(report, py))
        ax.set_title(s, fontsize=9)
    fig.colorbar(sca, ax=axes[:len(panels)], shrink=0.8, label=OBJ_LABEL.get(obj, obj))
    fig.suptitle(title, fontsize=9)
    return _save(fig, out_dir, "fit_landscape.png")


def fig_individuality(report: dict, out_dir: Path) -> list[str]:
    ind = report.get("individuality")
    if not ind or ind.get("matrix") is None:
        return []
    ids = list(report.get("subjects") or [])
    panels = [(ind, "Twins vs subjects (raw)")]
    if (ind.get("residual") or {}).get("matrix") is not None:
        panels.append((ind["residual"], "Residual (cohort mean removed)"))
    n = len(ind["matrix"])
    side = min(6.0, 2.5 + 0.2 * n)
    fig = _fig(side * len(panels) + 1.2 * len(panels), side + 0.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (res, title) in zip(axes, panels):
        _heatmap(fig, ax, res, ids, title, "subject (empirical FC)", "twin (simulated FC)")
    return _save(fig, out_dir, "individuality.png")


def _entries(ind: dict) -> list[tuple[str, dict]]:
    """(label, result) for twins, residual and every non-null baseline, in that order."""
    out = [("twins", ind)]
    if ind.get("residual"):
        out.append(("residual", ind["residual"]))
    out += [(k, v) for k, v in (ind.get("baselines") or {}).items() if v]
    return out


def fig_baselines(report: dict, out_dir: Path) -> list[str]:
    ind = report.get("individuality")
    if not ind or ind.get("accuracy") is None:
        return []
    ent = _entries(ind)
    n = len(ind.get("matrix") or report.get("subjects") or [])
    labels = [k for k, _ in ent]
    x = np.arange(len(ent))
    fig = _fig(max(6.0, 1.2 * len(ent) + 2.0), 6.0)
    ax1, ax2 = fig.subplots(2, 1)
    w = 0.38
    ax1.bar(x - w / 2, _arr([r.get("accuracy") for _, r in ent]), w, label="twin → subject")
    ax1.bar(x + w / 2, _arr([r.get("accuracy_subject_to_twin") for _, r in ent]), w, label="subject → twin")
    if n:
        ax1.axhline(1.0 / n, color="black", ls="--", lw=1, label=f"chance 1/n = {1.0 / n:.3f}")
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("identification accuracy\n(fraction of subjects)")
    ax1.set_title("Identification: twins vs residual vs baselines", fontsize=9)
    ax1.legend(fontsize=7, loc="upper right")
    ax2.bar(x, _arr([r.get("i_diff") for _, r in ent]), 0.6, color="C2")
    ax2.axhline(0.0, color="black", lw=0.8)
    ax2.set_ylabel("I_diff\n(own − other similarity, r)")
    ax2.set_title("Differential identifiability", fontsize=9)
    for ax in (ax1, ax2):
        ax.set_xticks(x, labels, fontsize=8)
    ax2.set_xlabel("comparison")
    return _save(fig, out_dir, "baselines.png")


def fig_cross_session(report: dict, out_dir: Path) -> list[str]:
    """Cross-session identification accuracy of every computed method, one bar per direction."""
    xs = report.get("cross_session")
    methods = {k: v for k, v in ((xs or {}).get("methods") or {}).items() if v}
    if not methods:
        return []
    dirs = [f"session {a} → {b}" for a, b in xs.get("directions") or []]
    x = np.arange(len(methods))
    w = 0.8 / max(1, len(dirs))
    fig = _fig(max(6.0, 1.3 * len(methods) + 2.5), 4.2)
    ax = fig.subplots()
    for k, d in enumerate(dirs):
        res = [v["directions"][k] for v in methods.values()]
        bars = ax.bar(x + (k - (len(dirs) - 1) / 2) * w, _arr([r.get("accuracy") for r in res]), w,
                      color=f"C{k}", label=d)
        for bar, r in zip(bars, res):
            p = r.get("p_value")
            ax.annotate(f"{r.get('hits')}/{r.get('n')}\np={p:.2g}" if p is not None else f"{r.get('hits')}/{r.get('n')}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 2),
                        textcoords="offset points", ha="center", fontsize=6)
    n = len(xs.get("participants") or [])
    if n:
        ax.axhline(1.0 / n, color="black", ls="--", lw=1, label=f"chance 1/n = {1.0 / n:.3f}")
    ax.set_ylim(0, 1.2)
    ax.set_xticks(x, [v.get("label") or k for k, v in methods.items()], rotation=20, ha="right", fontsize=8)
    ax.set(xlabel="method", ylabel="identification accuracy\n(fraction of participants)")
    ax.set_title("Cross-session identification: fitted on one session, identified on the other", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out_dir, "cross_session.png")


def fig_test_retest(report: dict, out_dir: Path) -> list[str]:
    tr = report.get("test_retest")
    if not tr:
        return []
    ids, ses = list(report.get("subjects") or []), list(tr.get("sessions") or ["session 1", "session 2"])
    mats = [(tr[k], t) for k, t in (("cross_session", "Twins across sessions"),
                                    ("empirical_fingerprint", "Empirical FC across sessions"))
            if (tr.get(k) or {}).get("matrix") is not None]
    n = len(mats[0][0]["matrix"]) if mats else 0
    side = min(5.5, 2.5 + 0.2 * n)
    fig = _fig(3.5 + (side + 1.2) * len(mats), side + 0.8)
    axes = fig.subplots(1, 1 + len(mats), squeeze=False, width_ratios=[0.6 * side] + [side] * len(mats))[0]
    icc = tr.get("icc") or {}
    names = list(icc)
    axes[0].bar(range(len(names)), _arr([icc[k] for k in names]), color="C4")
    axes[0].axhline(0.0, color="black", lw=0.8)
    axes[0].set_xticks(range(len(names)), names)
    axes[0].set_ylim(min(-0.1, np.nanmin(_arr([icc[k] for k in names] or [0]))) - 0.05, 1.0)
    axes[0].set(xlabel="free parameter", ylabel="ICC(2,1) of fitted value")
    axes[0].set_title("Test–retest reliability", fontsize=9)
    for ax, (res, title) in zip(axes[1:], mats):
        _heatmap(fig, ax, res, ids, title, f"subject, session {ses[-1]}", f"subject, session {ses[0]}")
    return _save(fig, out_dir, "test_retest.png")


def fig_recovery(report: dict, out_dir: Path) -> list[str]:
    rec = report.get("recovery")
    if not rec:
        return []
    names = list(rec)
    fig = _fig(3.6 * len(names) + 0.4, 3.8)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, p in zip(axes, names):
        t, r = _arr(rec[p]["true"]), _arr(rec[p]["recovered"])
        if not np.isfinite(np.r_[t, r]).any():
            continue
        lo, hi = np.nanmin(np.r_[t, r]), np.nanmax(np.r_[t, r])
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "--", color="grey", lw=1, label="identity")
        ax.plot(t, r, "o", color="C0", label="subject")
        med = rec[p].get("rel_error_median")
        ax.set_title(f"{p}: median relative error {med:.3f}" if med is not None else p, fontsize=9)
        ax.set(xlabel="true " + _param_label(report, p), ylabel="recovered " + _param_label(report, p))
        ax.legend(fontsize=7)
    return _save(fig, out_dir, "recovery.png")


def fig_phenotype(report: dict, out_dir: Path) -> list[str]:
    rows = report.get("phenotype")
    if not rows:
        return []
    x = np.arange(len(rows))
    rho = _arr([r.get("rho") for r in rows])
    fig = _fig(max(5.0, 0.8 * len(rows) + 2.0), 4.2)
    ax = fig.subplots()
    ax.bar(x, rho, color=["C0" if v >= 0 else "C3" for v in np.nan_to_num(rho)])
    for xi, v, r in zip(x, rho, rows):
        q = r.get("q_value")
        ax.annotate(f"q={q:.3f}" if q is not None else "q=n/a", (xi, 0 if np.isnan(v) else v),
                    xytext=(0, 3 if (np.isnan(v) or v >= 0) else -10), textcoords="offset points",
                    ha="center", fontsize=7)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_ylim(-1.1, 1.1)
    ax.set_xticks(x, [f"{r['param']} × {r['column']}" for r in rows], rotation=45, ha="right", fontsize=8)
    ax.set(xlabel="fitted parameter × phenotype column", ylabel="Spearman ρ (unitless)")
    ns = sorted({r.get("n") for r in rows if r.get("n") is not None})
    ax.set_title(f"Parameter–phenotype correlations (n = {', '.join(map(str, ns))}; q = FDR-adjusted p)",
                 fontsize=9)
    return _save(fig, out_dir, "phenotype.png")


#: report section -> figure function, in page order
FIGURES = {
    "fit_scores": fig_fit_scores, "fit_fc": fig_fit_fc, "fit_convergence": fig_fit_convergence,
    "fit_landscape": fig_fit_landscape, "cross_session": fig_cross_session, "individuality": fig_individuality,
    "baselines": fig_baselines, "test_retest": fig_test_retest, "recovery": fig_recovery, "phenotype": fig_phenotype,
}


def make_figures(report: dict, out_dir: Path) -> dict[str, list[str]]:
    """Every figure of the report into ``out_dir``: ``{figure key: [PNG filenames]}``."""
    return {key: fn(report, Path(out_dir)) for key, fn in FIGURES.items()}
