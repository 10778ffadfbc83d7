"""HTML page of the twin report: plain HTML with a little inline CSS, no JavaScript, no external resources.

:func:`write_report` draws the figures (:mod:`explorer.report.figures`) into a folder and writes
``index.html`` beside them; :func:`render_html` is the pure dict -> text part. All text is escaped.
"""

from __future__ import annotations

import math
import re
from html import escape
from pathlib import Path
from typing import Any

from explorer.report.cross_session import LABELS, METHODS, within_session_note
from explorer.report.figures import make_figures

__all__ = ["render_html", "write_report"]

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right} th{background:#f2f2f2}
td.name,th.name{text-align:left} .meta{color:#555} .absent{color:#777;font-style:italic}
.notes{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em 1em}
.warn{border-left:4px solid #d08a00;padding:.2em .8em;color:#333} .headline{font-size:1.05em;border-left:4px solid #2a6fdb;padding:.3em .8em;background:#eef4ff} td small{white-space:nowrap;color:#555} img{max-width:100%;height:auto;display:block;margin:.6em 0;border:1px solid #eee}
"""

ABSENT = {
    "fit": "No trial of this study has finished, so there is nothing to fit-check yet.",
    "individuality": "Individuality needs the fitted twins of at least two subjects; this study has fewer.",
    "test_retest": ("One session per subject: add `split: 2` to the study config to fit each half of every "
                    "subject's recording as its own session and measure test–retest reliability."),
    "recovery": ("No ground truth in this cohort: parameter recovery needs a synthetic cohort whose phenotype "
                 "holds the true parameters (`true_<param>` columns)."),
    "phenotype": "No phenotype columns in this cohort, so the fitted parameters cannot be related to any.",
}


def _num(x, digits: int = 3) -> str:
    """A number to 3 decimals (integers as they are); None -> an em dash."""
    if x is None:
        return "—"
    if isinstance(x, bool) or isinstance(x, int):
        return str(x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        return escape(str(x))
    return "nan" if math.isnan(v) else f"{v:.{digits}f}"


def _p(x) -> str:
    try:
        return "&lt; 0.001" if x is not None and 0 < float(x) < 0.001 else _num(x)
    except (TypeError, ValueError):
        return _num(x)


def _mean_sd(resim: dict, obj: str) -> str:
    m, s = resim.get(f"{obj}_mean"), resim.get(f"{obj}_sd")
    return "—" if m is None else f"{_num(m)} ± {_num(s)}"


def _table(head: list[str], rows: list[list[str]], attrs: str = "") -> str:
    """``head`` is escaped here; ``rows`` are ready ``<td>`` strings (first cell left-aligned by class)."""
    th = "".join(f'<th{" class=name" if i == 0 or h == "note" else ""}>{escape(h)}</th>' for i, h in enumerate(head))
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f"<table{attrs}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _td(text: str, cls: str = "") -> str:
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def _imgs(figures: dict[str, list[str]], key: str, alt: str) -> str:
    return "".join(f'<img src="{escape(f)}" alt="{escape(alt)}">' for f in figures.get(key) or [])


def _code(text: str) -> str:
    """Escaped text with `backticks` as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def _section(sid: str, title: str, body: str | None) -> str:
    inner = body if body is not None else f'<p class="absent">{_code(ABSENT[sid])}</p>'
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{inner}</section>'


def _fit(report: dict, figures: dict) -> str | None:
    fit = report.get("fit")
    if not fit:
        return None
    free = list(report.get("free_params") or [])
    objs = [o for o in ("fc_r", "fcd_ks") if any((f.get("resim") or {}).get(f"{o}_mean") is not None
                                                  for f in fit.values())]
    head = ["subject", "trials", "best trial"] + free
    head += [f"{o} (search best)" for o in objs] + [f"{o} re-simulated (mean ± sd)" for o in objs]
    rows = []
    for s in [s for s in report.get("subjects", []) if s in fit] or list(fit):
        f = fit[s]
        bp, bs, rs = f.get("best_params") or {}, f.get("best_scores") or {}, f.get("resim") or {}
        rows.append([_td(escape(s), "name"), _td(_num(f.get("n_trials"))), _td(_num(f.get("best_number")))]
                    + [_td(_num(bp.get(p))) for p in free] + [_td(_num(bs.get(o))) for o in objs]
                    + [_td(_mean_sd(rs, o)) for o in objs])
    summ = report.get("summary") or {}
    med = "; ".join(f"median re-simulated {escape(k.removesuffix('_resim_median'))}: {_num(v)}"
                    for k, v in summ.items() if k.endswith("_resim_median"))
    order = [s for s in report.get("subjects", []) if s in fit] or list(fit)
    fronts = {s: fit[s].get("pareto_front") for s in order if fit[s].get("pareto_front")}
    pareto = ("<p>Several objectives: each twin is its subject's Pareto compromise, the front's trial nearest "
              "the best value of every objective once each is scaled to [0, 1] over the front. Front sizes: "
              + ", ".join(f"{escape(s)} {len(v)}" for s, v in fronts.items()) + ".</p>") if fronts else ""
    regional = sorted({k for s in order for k in (fit[s].get("regional_params") or {})})
    reg_rows = [[_td(escape(s), "name")] + [_td(_range((fit[s].get("regional_params") or {}).get(k))) for k in regional]
                for s in order]
    reg = ("<p>Per-region parameters of each twin (maps, groups, data-derived values and FIC's J_I), "
           "min – max over regions (mean); every value is in <code>report.json</code>.</p>"
           + _table(["subject"] + regional, reg_rows, ' id="regional-table"')) if regional else ""
    return (f"<p>{med + '. ' if med else ''}The search's best score of a subject is optimistic (the best of many "
            f"noisy draws); re-simulating its best parameters with {escape(str(report.get('seeds', '?')))} "
            "seeds gives the honest score.</p>"
            + pareto
            + _imgs(figures, "fit_scores", "re-simulated vs search best scores per subject")
            + _table(head, rows, ' id="fit-table"') + reg
            + _imgs(figures, "fit_fc", "empirical vs simulated FC matrices")
            + _imgs(figures, "fit_convergence", "best-so-far score vs trial number per subject")
            + _imgs(figures, "fit_landscape", "score over the free parameters"))


def _range(values: list | None) -> str:
    if not values:
        return "—"
    v = [float(x) for x in values]
    return f"{_num(min(v))} – {_num(max(v))} ({_num(sum(v) / len(v))})"


def _ident_row(label: str, r: dict | None, acc_cls: str = "", note: str = "") -> list[str]:
    if not r:
        return [_td(escape(label), "name")] + [_td("—")] * 4 + [_td(escape(note or "not computed"), "name")]
    p = f"{_p(r.get('p_value'))}<br><small>{escape(str(r.get('p_method') or 'method not given'))}</small>"
    return [_td(escape(label), "name"), _td(_num(r.get("accuracy")), acc_cls),
            _td(_num(r.get("accuracy_subject_to_twin"))), _td(p), _td(_num(r.get("i_diff"))),
            _td(escape(r.get("note") or note), "name")]


def _individuality(report: dict, figures: dict) -> str | None:
    ind = report.get("individuality")
    if not ind:
        return None
    n = len(ind.get("matrix") or report.get("subjects") or [])
    rows = [_ident_row("twins", ind, "accuracy", "simulated FC of each twin vs every subject's empirical FC"),
            _ident_row("residual", ind.get("residual"), "", "the same after removing the cohort-mean FC")]
    rows += [_ident_row(k, v) for k, v in (ind.get("baselines") or {}).items()]
    head = ["comparison", "accuracy (twin→subject)", "accuracy (subject→twin)", "p-value (method)", "I_diff", "note"]
    chance = f" Chance level is 1/n = {_num(1.0 / n)} with n = {n} subjects." if n else ""
    caveat = "" if report.get("cross_session") else f'<p class="warn" id="within-session-note">{_code(within_session_note())}</p>'
    return (caveat + f"<p>Can each twin pick out its own subject among all {n}? Accuracy is the fraction of twins whose "
            f"most similar subject is their own (ties count as failures).{chance}</p>"
            + _table(head, rows, ' id="individuality-table"')
            + _imgs(figures, "individuality", "twin x subject similarity matrices")
            + _imgs(figures, "baselines", "identification accuracy and I_diff of twins, residual and baselines"))


_XS_FIELDS = ("hits/n (accuracy)", "p", "residual hits/n (p)", "self r", "I_diff raw / residual", "fit r")


def _hits(r: dict) -> str:
    return f"{_num(r.get('hits'))}/{_num(r.get('n'))} ({_num(r.get('accuracy'))})"


def _xs_cells(d: dict) -> list[str]:
    res = d.get("residual") or {}
    return [_td(_hits(d), "accuracy"),
            _td(f"{_p(d.get('p_value'))}<br><small>{escape(str(d.get('p_method') or 'method not given'))}</small>"),
            _td(f"{_num(res.get('hits'))}/{_num(res.get('n'))} ({_p(res.get('p_value'))})" if res else "—"),
            _td(_num(d.get("self_r"))), _td(f"{_num(d.get('i_diff'))} / {_num(res.get('i_diff'))}"),
            _td(_num(d.get("fit_r")))]


def _cross_session(report: dict, figures: dict) -> str | None:
    """The cross-session table: rows = methods, per direction the identification numbers; the ICC lines."""
    xs = report.get("cross_session")
    if not xs:
        return None
    dirs = [f"{escape(str(a))} → {escape(str(b))}" for a, b in xs.get("directions") or []]
    methods = xs.get("methods") or {}
    top = ('<tr><th class=name rowspan="2">method</th>'
           + "".join(f'<th colspan="{len(_XS_FIELDS)}">session {d}</th>' for d in dirs)
           + '<th rowspan="2">wall s / subject</th><th class=name rowspan="2">note</th></tr>')
    sub = "<tr>" + "".join(f"<th>{escape(f)}</th>" for _ in dirs for f in _XS_FIELDS) + "</tr>"
    rows = []
    for m in [m for m in METHODS if m in methods] + [m for m in methods if m not in METHODS]:
        v = methods[m]
        label = (v or {}).get("label") or LABELS.get(m, m)
        if not v:
            rows.append([_td(escape(label), "name")] + [_td("—")] * (len(_XS_FIELDS) * len(dirs) + 1)
                        + [_td("not computed: this study has no input for it (e.g. no EC stage)", "name")])
            continue
        note = v.get("note") or ""
        if v.get("missing"):
            note += f"; no input for {', '.join(map(str, v['missing']))} (never a hit)"
        cells = [c for d in v.get("directions") or [] for c in _xs_cells(d)]
        rows.append([_td(escape(label), "name")] + cells + [_td(_num(v.get("wall_s"), 1)), _td(escape(note), "name")])
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    table = f'<table id="cross-session-table"><thead>{top}{sub}</thead><tbody>{body}</tbody></table>'
    icc = xs.get("icc") or {}
    icc_rows = [[_td(escape(lab), "name")] + ([_td(_num(r.get("median"))), _td(f"{_num(r.get('q1'))} – {_num(r.get('q3'))}"),
                                               _td(_num(r.get("n_edges"))), _td(escape(str(r.get("edges"))), "name")]
                                              if r else [_td("—")] * 3 + [_td("not computed", "name")])
                for k, lab in (("ec", "EC"), ("empirical_fc", "empirical FC"), ("partial_corr", "partial correlation"))
                if k in icc for r in [icc[k]]]
    excl = xs.get("excluded") or {}
    excluded = ("<p>Left out: " + "; ".join(f"{escape(str(p))} ({escape(str(w))})" for p, w in excl.items()) + ".</p>"
                if excl else "")
    n = len(xs.get("participants") or [])
    return (f'<p class="headline">{escape(str(xs.get("headline") or ""))}</p>'
            f"<p>Rows: what is compared across sessions. A twin is fitted on the first session of a direction and "
            f"compared with every participant's empirical FC of the second; the other rows compare a participant's "
            f"own measure between sessions. Hits: participants whose best match is themselves (ties fail; chance "
            f"1 in {n}); p: permutation p of the hits. Self r: median similarity with the participant's own other "
            f"session. I_diff: mean own − mean other similarity, raw and with the cohort-mean pattern removed. "
            f"Fit r: median r of a twin with the session it was fitted on.</p>"
            + table + excluded
            + "<p>Edge-wise test–retest reliability, ICC(2,1) over participants of each edge between the two "
              "sessions:</p>"
            + _table(["measure", "median ICC", "quartiles", "edges", "which edges"], icc_rows,
                     ' id="cross-session-icc"')
            + _imgs(figures, "cross_session", "cross-session identification accuracy per method, both directions"))


def _test_retest(report: dict, figures: dict) -> str | None:
    tr = report.get("test_retest")
    if not tr:
        return None
    icc = tr.get("icc") or {}
    ses = ", ".join(escape(str(s)) for s in tr.get("sessions") or [])
    t1 = _table(["parameter", "ICC(2,1)"], [[_td(escape(k), "name"), _td(_num(v))] for k, v in icc.items()])
    rows = [_ident_row(lab, tr.get(k)) for k, lab in (("cross_session", "twins across sessions"),
                                                       ("empirical_fingerprint", "empirical FC across sessions"))]
    head = ["comparison", "accuracy (row→column)", "accuracy (column→row)", "p-value (method)", "I_diff", "note"]
    return (f"<p>Sessions: {ses}. ICC near 1: a parameter fitted on one session predicts the other.</p>" + t1
            + _table(head, rows, ' id="test-retest-table"') + _imgs(figures, "test_retest", "test-retest"))


def _recovery(report: dict, figures: dict) -> str | None:
    rec = report.get("recovery")
    if not rec:
        return None
    rows = [[_td(escape(p), "name"), _td(_num(len(v.get("true") or []))), _td(_num(v.get("rel_error_median")))]
            for p, v in rec.items()]
    return ("<p>Parameters fitted to synthetic subjects whose true parameters are known.</p>"
            + _table(["parameter", "subjects", "median relative error"], rows, ' id="recovery-table"')
            + _imgs(figures, "recovery", "recovered vs true parameter values"))


def _phenotype(report: dict, figures: dict) -> str | None:
    ph = report.get("phenotype")
    if not ph:
        return None
    rows = [[_td(escape(str(r.get("param"))), "name"), _td(escape(str(r.get("column"))), "name"),
             _td(_num(r.get("n"))), _td(_num(r.get("rho"))), _td(_p(r.get("p_value"))), _td(_p(r.get("q_value")))]
            for r in ph]
    ns = [r.get("n") for r in ph if r.get("n") is not None]
    warn = ('<p class="warn">With fewer than 10 subjects these correlations cannot mean much.</p>'
            if ns and min(ns) < 10 else "")
    return (warn + _table(["parameter", "phenotype column", "n", "Spearman ρ", "p-value", "q-value (FDR)"], rows,
                          ' id="phenotype-table"')
            + _imgs(figures, "phenotype", "parameter-phenotype correlations"))


def _ec(report: dict, figures: dict) -> str | None:
    """The EC stage per subject: the analytic (linear) fit beside the simulated EC twin and the global twin."""
    rows = report.get("ec")
    if not rows:
        return None
    head = ["subject", "EC used", "analytic FC r: global twin", "analytic FC r: EC twin", "simulated FC r: EC twin",
            "simulated FC r: global twin", "iterations", "fit time (s)", "why not used"]
    body = []
    for sid in [s for s in report.get("subjects", []) if s in rows]:
        r = rows[sid]
        sim = _num(r.get("fc_r_simulated")) + (f" ± {_num(r.get('fc_r_simulated_sd'))}"
                                                if r.get("fc_r_simulated_sd") is not None else "")
        body.append([_td(escape(sid)), _td("yes" if r.get("used") else "no"), _td(_num(r.get("fc_r_start_analytic"))),
                     _td(_num(r.get("fc_r_analytic"))), _td(sim), _td(_num(r.get("fc_r_global_twin"))),
                     _td(escape(str(r.get("iterations") if r.get("iterations") is not None else "-"))),
                     _td(_num(r.get("wall_s"), 2)), _td(escape(str(r.get("why") or "")))])
    intro = ("<p>Each subject's effective connectivity (EC) is fitted analytically to its FC and lag-tau covariance "
             "(linearised Hopf model), starting from its search's best global parameters. The EC twin is then the "
             "nonlinear model simulated on the EC with the report's fresh seeds. FC r is against the subject's own "
             "empirical FC (the session it was fitted on).</p>")
    return intro + _table(head, body, 'id="ec-table"')


def _mode(mode: Any) -> str:
    """The search mode as the report states it (a report built before it was recorded: unknown)."""
    return {"deterministic": "deterministic (reproducible)",
            "asynchronous": "asynchronous (not reproducible)"}.get(str(mode), "unknown")


def render_html(report: dict, figures: dict[str, list[str]]) -> str:
    """The report page; ``figures`` maps figure keys (see ``figures.FIGURES``) to PNG names beside it."""
    study = escape(str(report.get("study", "?")))
    objs = ", ".join(f"{escape(str(o))} ({escape(str(d))})"
                     for o, d in zip(report.get("objectives") or [], report.get("directions") or []))
    meta = (f"model {escape(str(report.get('model', '?')))} · {len(report.get('subjects') or [])} subjects · "
            f"free parameters {escape(', '.join(report.get('free_params') or [])) or 'none'} · objectives {objs} · "
            f"{escape(_mode(report.get('mode')))} search · "
            f"{escape(str(report.get('seeds', '?')))} re-simulation seeds · created "
            f"{escape(str(report.get('created', '?')))}")
    notes = report.get("notes") or []
    notes_html = ('<div class="notes"><ul>' + "".join(f"<li>{escape(str(x))}</li>" for x in notes) + "</ul></div>"
                  if notes else "")
    xs = _cross_session(report, figures)
    headline = (f'<p class="headline"><a href="#cross_session">{escape(str(report["cross_session"].get("headline")))}'
                "</a></p>" if xs else "")
    body = "".join([
        _section("fit", "Fit", _fit(report, figures)),
        f'<section id="cross_session"><h2>Individuality across sessions</h2>{xs}</section>' if xs else "",
        _section("ec", "Effective connectivity", _ec(report, figures)) if report.get("ec") else "",
        _section("individuality", "Individuality", _individuality(report, figures)),
        _section("test_retest", "Test–retest", _test_retest(report, figures)),
        _section("recovery", "Parameter recovery", _recovery(report, figures)),
        _section("phenotype", "Phenotype link", _phenotype(report, figures)),
    ])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Twin report: {study}</title>'
            f"<style>{CSS}</style></head><body><h1>Twin report: {study}</h1><p class=\"meta\">{meta}</p>"
            f"{headline}{notes_html}{body}</body></html>\n")


def write_report(report: dict, out_dir: Path) -> Path:
    """Draw the figures into ``out_dir`` and write ``index.html`` beside them; return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = make_figures(report, out_dir)
    path = out_dir / "index.html"
    path.write_text(render_html(report, figures), encoding="utf-8")
    return path
