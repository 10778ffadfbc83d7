"""The report's rendering half: figures + index.html from a report dict, checked as files and in a browser.

The browser test uses headless Chromium (Debian package ``chromium``; `make test` installs it with
tests/install_chromium.sh) and is skipped, with the reason, when it is missing.
"""

from __future__ import annotations

import copy
import html
import re
from pathlib import Path

import numpy as np
import pytest

from browser import PNG_MAGIC, load_in_browser, require_chromium, screenshot
from explorer.report.html import render_html, write_report

SUBJECTS = [f"NAP_{i:03d}" for i in range(1, 6)]


def _ident(rng, n: int, acc: float, acc_s2t: float, p: float, i_diff: float, diag: float = 0.3) -> dict:
    m = rng.uniform(0.1, 0.5, (n, n)) + diag * np.eye(n)
    return {"matrix": m.round(4).tolist(), "accuracy": acc, "accuracy_subject_to_twin": acc_s2t,
            "p_value": p, "p_method": "exact over all 120 permutations", "i_diff": i_diff}


def _fc(rng, n: int = 10) -> list[list[float]]:
    x = rng.standard_normal((200, n)) + rng.standard_normal((200, 1))
    return np.corrcoef(x, rowvar=False).round(4).tolist()


def fake_report(seed: int = 0) -> dict:
    """A realistic report dict: 5 subjects, free params G and a, 10x10 FC, every section present."""
    rng = np.random.default_rng(seed)
    fit, examples = {}, {}
    for k, s in enumerate(SUBJECTS):
        n_trials = 40 + k
        G, a = rng.uniform(0.5, 3.0, n_trials), rng.uniform(-0.1, 0.1, n_trials)
        score = 0.6 - 0.1 * (G - 1.5) ** 2 - 5 * a ** 2 + rng.normal(0, 0.03, n_trials)
        best = int(np.argmax(score))
        fc_r, ks = rng.normal(0.5, 0.04, 5), rng.uniform(0.1, 0.3, 5)
        fit[s] = {
            "n_trials": n_trials, "best_number": best,
            "best_params": {"G": float(G[best]), "a": float(a[best])},
            "best_scores": {"fc_r": float(score[best]), "fcd_ks": 0.15},
            "resim": {"fc_r": fc_r.tolist(), "fcd_ks": ks.tolist(), "fc_r_mean": float(fc_r.mean()),
                      "fc_r_sd": float(fc_r.std()), "fcd_ks_mean": float(ks.mean()), "fcd_ks_sd": float(ks.std())},
            "convergence": {"number": list(range(n_trials)), "value": score.tolist(),
                            "best_so_far": np.maximum.accumulate(score).tolist()},
            "landscape": {"params": {"G": G.tolist(), "a": a.tolist()}, "score": score.tolist()},
        }
        if k < 4:
            examples[s] = {"empirical": _fc(rng), "simulated": _fc(rng)}
    n = len(SUBJECTS)
    ind = _ident(rng, n, 0.6, 0.4, 0.0417, 0.137)
    ind["residual"] = _ident(rng, n, 0.8, 0.6, 0.0083, 0.211)
    ind["baselines"] = {
        "empirical": dict(_ident(rng, n, 1.0, 1.0, 0.0083, 0.402), note="empirical FC vs itself: the ceiling"),
        "sc": dict(_ident(rng, n, 0.2, 0.2, 0.6333, 0.012), note="structural vs functional connectivity"),
        "sc_only_twin": dict(_ident(rng, n, 0.4, 0.2, 0.2167, 0.044), note="everyone's twin with the same G"),
        "params_only_twin": None,
    }
    return {
        "study": "quickstart", "model": "hopf", "created": "2026-11-25T21:00:00", "seeds": 5,
        "objectives": ["fc_r"], "directions": ["maximize"], "free_params": ["G", "a"], "subjects": SUBJECTS,
        "fit": fit, "fc_examples": examples, "individuality": ind,
        "test_retest": {"sessions": ["s1", "s2"], "icc": {"G": 0.512, "a": -0.087},
                        "cross_session": _ident(rng, n, 0.4, 0.6, 0.2167, 0.031),
                        "empirical_fingerprint": _ident(rng, n, 1.0, 0.8, 0.0083, 0.298)},
        "recovery": {p: {"true": t.tolist(), "recovered": (t * rng.normal(1, 0.05, n)).tolist(),
                         "rel_error": rng.uniform(0, 0.1, n).tolist(), "rel_error_median": med}
                     for p, t, med in (("G", rng.uniform(0.5, 3, n), 0.046), ("a", rng.uniform(-0.1, 0.1, n), 0.093))},
        "phenotype": [{"param": p, "column": c, "n": n, "rho": rho, "p_value": pv, "q_value": q}
                      for p, c, rho, pv, q in (("G", "age", 0.3, 0.683, 0.911), ("G", "sex", -0.7, 0.188, 0.752),
                                               ("a", "age", 0.1, 0.95, 0.95), ("a", "sex", 0.9, 0.037, 0.148))],
        "notes": ["Only 5 subjects: <every> number here is illustrative."],
        "summary": {"fc_r_resim_median": 0.517, "fcd_ks_resim_median": 0.204},
    }


def _sparse_report() -> dict:
    r = fake_report(1)
    r["test_retest"] = r["recovery"] = r["phenotype"] = None
    return r


def _check_images(text: str, out: Path, expected: set[str]) -> list[str]:
    srcs = re.findall(r'<img src="([^"]+)" alt="[^"]+"', text)
    assert set(srcs) == expected
    for s in srcs:
        data = (out / s).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000, s
    assert sorted(p.name for p in out.iterdir()) == sorted(srcs + ["index.html"])  # nothing else written
    return srcs


def test_full_report_files_and_numbers(tmp_path):
    rep = fake_report()
    path = write_report(rep, tmp_path)
    assert path == tmp_path / "index.html"
    text = path.read_text(encoding="utf-8")
    _check_images(text, tmp_path, {"fit_scores.png", "fit_fc.png", "fit_convergence.png", "fit_landscape.png",
                                   "individuality.png", "baselines.png", "test_retest.png", "recovery.png",
                                   "phenotype.png"})
    assert text.count("<h2>") == 5
    assert 'id="individuality-table"' in text
    table = text.split('id="individuality-table"', 1)[1].split("</table>", 1)[0]
    assert '<td class="accuracy">0.600</td>' in table
    for k in ("twins", "residual", "empirical", "sc", "sc_only_twin", "params_only_twin"):
        assert f">{k}<" in table
    for num in ("0.400", "0.137", "0.211", "0.042", "0.402", "exact over all 120 permutations"):
        assert num in table
    fit_row = text.split(">NAP_003<", 1)[1].split("</tr>", 1)[0]
    f3 = rep["fit"]["NAP_003"]
    for v in (f3["best_params"]["G"], f3["best_params"]["a"], f3["best_scores"]["fc_r"], f3["resim"]["fc_r_mean"]):
        assert f"{v:.3f}" in fit_row
    for num in ("0.517", "0.512", "-0.087", "0.046", "0.093", "0.911", "-0.700", "1/n = 0.200"):
        assert num in text
    assert "cannot mean much" in text
    assert html.escape(rep["notes"][0]) in text and "<every>" not in text  # escaped
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_absent_sections_say_why(tmp_path):
    text = write_report(_sparse_report(), tmp_path).read_text(encoding="utf-8")
    _check_images(text, tmp_path, {"fit_scores.png", "fit_fc.png", "fit_convergence.png", "fit_landscape.png",
                                   "individuality.png", "baselines.png"})
    assert text.count("<h2>") == 5
    assert "One session per subject: add <code>split: 2</code>" in text
    assert "No ground truth in this cohort" in text
    assert "No phenotype columns" in text and "cannot mean much" not in text


@pytest.mark.parametrize("free", [["G"], ["G", "a", "b", "c"]])
def test_landscape_other_dimensions(tmp_path, free):
    rep = fake_report()
    rep["free_params"] = free
    for f in rep["fit"].values():
        g = f["landscape"]["params"]["G"]
        f["landscape"]["params"] = {p: [x * (i + 1) for x in g] for i, p in enumerate(free)}
        f["best_params"] = {p: f["best_params"]["G"] * (i + 1) for i, p in enumerate(free)}
    text = write_report(rep, tmp_path).read_text(encoding="utf-8")
    assert (tmp_path / "fit_landscape.png").read_bytes().startswith(PNG_MAGIC)
    assert all(f">{p}<" in text for p in free)


def test_degenerate_inputs_do_not_crash(tmp_path):
    """Missing pieces (no FC examples, no fcd_ks, a subject without re-simulation, null residual/baselines)."""
    rep = _sparse_report()
    rep["fc_examples"] = {}
    for f in rep["fit"].values():
        f["resim"].update(fcd_ks=[None] * 5, fcd_ks_mean=None, fcd_ks_sd=None)
    rep["fit"]["NAP_002"]["resim"] = None
    rep["individuality"].update(residual=None, baselines={"empirical": None}, accuracy=None)
    text = write_report(rep, tmp_path / "a").read_text(encoding="utf-8")
    assert "fit_fc.png" not in text and "fit_scores.png" in text and "not computed" in text
    rep["individuality"] = None
    rep["fit"] = {}
    text = write_report(rep, tmp_path / "b").read_text(encoding="utf-8")
    assert "Individuality needs" in text and "No trial of this study has finished" in text
    assert text.count("<h2>") == 5


def test_render_html_without_figures_is_pure():
    rep = fake_report()
    before = copy.deepcopy(rep)
    text = render_html(rep, {})
    assert "<img" not in text and 'id="individuality-table"' in text
    assert rep == before


def test_report_in_browser(tmp_path):
    require_chromium()
    out = tmp_path / "report"
    index = write_report(fake_report(), out)
    n_img = index.read_text(encoding="utf-8").count("<img ")
    images, broken, dom = load_in_browser(index, tmp_path)
    assert images == n_img >= 9 and broken == 0
    table = dom.split('id="individuality-table"', 1)[1].split("</table>", 1)[0]
    assert re.search(r'<td class="accuracy">0\.600</td>', table)
    screenshot(index, tmp_path / "screenshot.png", tmp_path)


@pytest.mark.parametrize("mode, says", [("deterministic", "deterministic (reproducible) search"),
                                        ("asynchronous", "asynchronous (not reproducible) search"),
                                        (None, "unknown search")])
def test_the_report_states_the_search_mode(mode, says):
    rep = fake_report()
    if mode is not None:
        rep["mode"] = mode
    assert says in render_html(rep, {})
