"""The report's rendering half: figures + index.html from a report dict, checked as files and in a browser.

The browser test uses headless Chromium (Debian package ``chromium``; `make test` installs it with
tests/install_chromium.sh) and is skipped, with the reason, when it is missing.
"""

from __future__ import annotations

import copy
import html
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import PNG_MAGIC, WINDOW, image_layout, load_in_browser, require_chromium, screenshot
from explorer.report.figures import DPI
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


class _Tables(HTMLParser):
    """Every ``<table>`` of a page as (id, header cells, body rows), each cell its text (``<br>`` as a space)."""

    def __init__(self):
        super().__init__()
        self.tables: list[tuple[str | None, list[str], list[list[str]]]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append((dict(attrs).get("id"), [], []))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            _, head, body = self.tables[-1]
            (body if head else head).extend([self._row] if head else self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _tables(text: str) -> list[tuple[str | None, list[str], list[list[str]]]]:
    parser = _Tables()
    parser.feed(text)
    return parser.tables


def _table(text: str, key: str | list[str]) -> dict[str, dict[str, str]]:
    """The table with id ``key`` (or with header ``key``) as {first cell of a row: {column header: cell}}."""
    found = [(head, body) for tid, head, body in _tables(text) if (tid == key if isinstance(key, str) else head == key)]
    assert len(found) == 1, (key, [t[:2] for t in _tables(text)])
    head, body = found[0]
    assert all(len(r) == len(head) for r in body), (key, head, body)
    return {r[0]: dict(zip(head, r)) for r in body}


def _paragraphs(text: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", html.unescape(p)) for p in re.findall(r"<p[^>]*>(.*?)</p>", text, re.S)]


def _pixels(path: Path) -> np.ndarray:
    """The PNG at ``path`` decoded to RGB [height, width, 3] (fails on a file that does not decode)."""
    with Image.open(path) as im:
        assert im.format == "PNG", path
        im.load()
        return np.asarray(im.convert("RGB"))


def _coloured(px: np.ndarray) -> np.ndarray:
    """Pixels of a saturated colour (data marks, colour maps), not the greys of text, axes and background."""
    return (px.max(axis=2).astype(int) - px.min(axis=2)) > 60


def _check_drawn(path: Path) -> np.ndarray:
    """A figure that decodes, has the size of a whole number of inches at the figures' DPI, and shows data."""
    px = _pixels(path)
    h, w, _ = px.shape
    assert w >= 3 * DPI and h >= 2 * DPI, (path.name, w, h)
    assert (px < 250).any(axis=2).mean() > 0.01, f"{path.name} is (nearly) blank"
    assert _coloured(px).sum() > 100, f"{path.name} shows no coloured data marks"
    return px


def _check_images(text: str, out: Path, expected: set[str]) -> list[str]:
    srcs = re.findall(r'<img src="([^"]+)" alt="[^"]+"', text)
    assert set(srcs) == expected
    for s in srcs:
        assert (out / s).read_bytes().startswith(PNG_MAGIC), s
        _check_drawn(out / s)
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
    ind = _table(text, "individuality-table")
    assert list(ind) == ["twins", "residual", "empirical", "sc", "sc_only_twin", "params_only_twin"]
    assert '<td class="accuracy">0.600</td>' in text                 # the twins' accuracy is highlighted
    twins = ind["twins"]
    assert twins["accuracy (twin→subject)"] == "0.600" and twins["accuracy (subject→twin)"] == "0.400"
    assert twins["p-value (method)"] == "0.042 exact over all 120 permutations"
    assert twins["I_diff"] == "0.137" and ind["residual"]["I_diff"] == "0.211"
    assert ind["residual"]["accuracy (twin→subject)"] == "0.800"
    assert ind["empirical"]["I_diff"] == "0.402" and ind["empirical"]["note"].startswith("empirical FC vs itself")
    assert ind["sc"]["accuracy (twin→subject)"] == "0.200" and ind["sc"]["p-value (method)"].startswith("0.633 ")
    assert ind["params_only_twin"]["accuracy (twin→subject)"] == "—" and ind["params_only_twin"]["note"] == \
        "not computed"
    fit = _table(text, "fit-table")
    assert list(fit) == SUBJECTS
    for s in SUBJECTS:
        f = rep["fit"][s]
        row = fit[s]
        assert row["trials"] == str(f["n_trials"]) and row["best trial"] == str(f["best_number"])
        assert row["G"] == f"{f['best_params']['G']:.3f}" and row["a"] == f"{f['best_params']['a']:.3f}"
        assert row["fc_r (search best)"] == f"{f['best_scores']['fc_r']:.3f}"
        assert row["fc_r re-simulated (mean ± sd)"] == f"{f['resim']['fc_r_mean']:.3f} ± {f['resim']['fc_r_sd']:.3f}"
        assert row["fcd_ks re-simulated (mean ± sd)"] == \
            f"{f['resim']['fcd_ks_mean']:.3f} ± {f['resim']['fcd_ks_sd']:.3f}"
    icc = _table(text, ["parameter", "ICC(2,1)"])
    assert {k: v["ICC(2,1)"] for k, v in icc.items()} == {"G": "0.512", "a": "-0.087"}
    rec = _table(text, "recovery-table")
    assert {k: (v["subjects"], v["median relative error"]) for k, v in rec.items()} == {
        "G": ("5", "0.046"), "a": ("5", "0.093")}
    pheno = _tables(text)[[t[0] for t in _tables(text)].index("phenotype-table")]
    cells = {(r[0], r[1]): dict(zip(pheno[1], r)) for r in pheno[2]}
    assert cells["G", "age"]["q-value (FDR)"] == "0.911" and cells["G", "sex"]["Spearman ρ"] == "-0.700"
    assert cells["a", "sex"]["p-value"] == "0.037" and cells["a", "age"]["n"] == "5"
    paras = _paragraphs(text)
    assert any(p.startswith("median re-simulated fc_r: 0.517; median re-simulated fcd_ks: 0.204. ") for p in paras)
    assert any("Chance level is 1/n = 0.200 with n = 5 subjects." in p for p in paras)
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
    px = _check_drawn(tmp_path / "fit_landscape.png")
    h, w, _ = px.shape
    if len(free) == 1:                                       # one scatter of score vs G, one colour per subject
        assert (w, h) == (6 * DPI, 4 * DPI)
    else:                                                    # the first subject, 3 pairwise panels and a colour bar
        assert (w, h) == (round(11.8 * DPI), round(3.7 * DPI))
        for lo, hi in ((0.05, 0.3), (0.35, 0.6), (0.65, 0.85)):   # every panel shows coloured points
            assert _coloured(px[:, int(lo * w):int(hi * w)]).sum() > 50, (lo, hi)
    assert list(_table(text, "fit-table")["NAP_001"])[3:3 + len(free)] == free


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
    assert _table(dom, "individuality-table")["twins"]["accuracy (twin→subject)"] == "0.600"
    # every figure is laid out whole: inside the page's width, undistorted, none over another
    layout = image_layout(dom)
    rects = layout["images"]
    assert len(rects) == n_img
    for r in rects:
        with Image.open(out / r["src"]) as im:
            assert (r["natural_w"], r["natural_h"]) == im.size, r
        assert r["w"] > 100 and r["h"] > 100 and r["x"] >= 0 and r["x"] + r["w"] <= layout["width"] + 0.5, r
        assert r["w"] <= r["natural_w"] + 0.5, r                              # shrunk to fit, never blown up
        assert abs(r["w"] / r["h"] - r["natural_w"] / r["natural_h"]) < 0.02 * r["w"] / r["h"], r
    for a, b in zip(rects, rects[1:]):                       # one under the other, in the page's order
        assert b["y"] >= a["y"] + a["h"] - 0.5, (a, b)
    # the screenshot (same window, same layout) shows the page, and each figure painted where the DOM put it
    px = _pixels(screenshot(index, tmp_path / "screenshot.png", tmp_path))
    assert px.shape[:2] == (WINDOW[1], WINDOW[0])
    assert (px < 250).any(axis=2).mean() > 0.05
    shown = [r for r in rects if r["y"] + r["h"] <= WINDOW[1]]
    assert len(shown) >= 2, rects
    for r in shown:
        box = px[int(r["y"]) + 2:int(r["y"] + r["h"]) - 2, int(r["x"]) + 2:int(r["x"] + r["w"]) - 2]
        assert _coloured(box).sum() > 100, r
    outside = np.ones(px.shape[:2], bool)
    for r in rects:
        y, x = max(0, int(r["y"]) - 2), max(0, int(r["x"]) - 2)
        outside[y:int(r["y"] + r["h"]) + 3, x:int(r["x"] + r["w"]) + 3] = False
    assert _coloured(px)[outside].sum() < 0.02 * _coloured(px).sum()    # the colour is the figures'


@pytest.mark.parametrize("mode, says", [("deterministic", "deterministic (reproducible) search"),
                                        ("asynchronous", "asynchronous (not reproducible) search"),
                                        (None, "unknown search")])
def test_the_report_states_the_search_mode(mode, says):
    rep = fake_report()
    if mode is not None:
        rep["mode"] = mode
    assert says in render_html(rep, {})
