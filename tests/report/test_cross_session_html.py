"""The report page's cross-session section: cells parsed from the HTML, not searched in the page text."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np

from explorer.report.build import jsonable
from explorer.report.cross_session import LABELS, cross_session, within_session_note
from explorer.report.html import render_html, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIELDS = ("hits/n (accuracy)", "p", "residual hits/n (p)", "self r", "I_diff raw / residual", "fit r")


class _Tables(HTMLParser):
    """Every table by id: its rows as lists of cell texts (th and td, <br> as a space); section ids in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.sections: list[str] = []
        self.paragraphs: list[tuple[str, str]] = []   # (class, text)
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._p: list | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        elif tag == "table":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")
        elif tag == "p":
            self._p = [a.get("class", ""), []]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "p" and self._p is not None:
            self.paragraphs.append((self._p[0], "".join(self._p[1]).strip()))
            self._p = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._p is not None:
            self._p[1].append(data)


def _parse(text: str) -> _Tables:
    p = _Tables()
    p.feed(text)
    return p


def _sym(x):
    return (x + x.T) / 2


def _xs() -> dict:
    rng = np.random.default_rng(0)
    n, people = 10, 5
    shared = _sym(rng.standard_normal((n, n)))
    sessions, fc, twin, ec = {}, {}, {}, {}
    for p in range(people):
        own = _sym(rng.standard_normal((n, n)))
        strength = rng.random((n, n))
        for ses in ("1", "2"):
            sid = f"S{p}_ses-{ses}"
            sessions.setdefault(f"S{p}", {})[ses] = sid
            fc[sid] = np.tanh(shared + own + 0.4 * _sym(rng.standard_normal((n, n))))
            twin[sid] = np.tanh(shared + 0.5 * own + 0.6 * _sym(rng.standard_normal((n, n))))
            ec[sid] = strength + 0.3 * rng.random((n, n))
    xs = cross_session(sessions, list(fc), fc, global_twin_fc=twin, ec=ec, wall_s={"global_twin": 12.5})
    return jsonable(xs)


def _report(xs: dict | None) -> dict:
    ids = [f"S{p}_ses-{s}" for p in range(5) for s in ("1", "2")]
    m = np.eye(len(ids)) * 0.3 + 0.2
    ind = {"matrix": m.tolist(), "accuracy": 1.0, "accuracy_subject_to_twin": 1.0, "p_value": 0.001,
           "p_method": "Monte Carlo", "i_diff": 0.3, "residual": None, "baselines": {}}
    return {"study": "x", "model": "hopf", "subjects": ids, "free_params": ["G"], "objectives": ["fc_r"],
            "directions": ["maximize"], "seeds": 2, "fit": {}, "individuality": ind, "cross_session": xs}


def _row(table: list[list[str]], label: str) -> list[str]:
    return next(r for r in table if r and r[0] == label)


def test_cross_session_table_cells_hold_the_numbers():
    xs = _xs()
    page = _parse(render_html(_report(xs), {}))
    table = page.tables["cross-session-table"]
    head_dirs, head_fields = table[0], table[1]
    assert head_dirs[1:3] == ["session 1 → 2", "session 2 → 1"]
    assert head_fields == list(FIELDS) * 2
    for method in ("global_twin", "empirical_fc", "ec"):
        v = xs["methods"][method]
        row = _row(table, LABELS[method])
        assert len(row) == 1 + 2 * len(FIELDS) + 2
        for k, d in enumerate(v["directions"]):
            cells = dict(zip(FIELDS, row[1 + k * len(FIELDS):1 + (k + 1) * len(FIELDS)]))
            assert cells["hits/n (accuracy)"] == f"{d['hits']}/{d['n']} ({d['accuracy']:.3f})"
            assert cells["p"].split(" ")[0] == f"{d['p_value']:.3f}" and "exact" in cells["p"]
            r = d["residual"]
            assert cells["residual hits/n (p)"] == f"{r['hits']}/{r['n']} ({r['p_value']:.3f})"
            assert cells["self r"] == f"{d['self_r']:.3f}"
            assert cells["I_diff raw / residual"] == f"{d['i_diff']:.3f} / {r['i_diff']:.3f}"
            assert cells["fit r"] == (f"{d['fit_r']:.3f}" if method == "global_twin" else "—")
    assert _row(table, LABELS["global_twin"])[-2] == "12.5"
    # a method without input is a row of dashes that says why, not zeros
    none = _row(table, LABELS["ec_twin_simulated"])
    assert set(none[1:-1]) == {"—"} and "not computed" in none[-1]
    icc = page.tables["cross-session-icc"]
    ec_icc = _row(icc, "EC")
    assert ec_icc[1] == f"{xs['icc']['ec']['median']:.3f}"
    assert ec_icc[2] == f"{xs['icc']['ec']['q1']:.3f} – {xs['icc']['ec']['q3']:.3f}"
    assert _row(icc, "empirical FC")[3] == str(xs["icc"]["empirical_fc"]["n_edges"])
    assert _row(icc, "partial correlation")[-1] == "not computed"


def test_cross_session_comes_first_with_its_headline_and_replaces_the_note():
    xs = _xs()
    page = _parse(render_html(_report(xs), {}))
    assert page.sections.index("cross_session") < page.sections.index("individuality")
    headlines = [t for c, t in page.paragraphs if c == "headline"]
    assert headlines and all(t == xs["headline"] for t in headlines)
    assert page.paragraphs[0] == ("meta", page.paragraphs[0][1]) and page.paragraphs[1][0] == "headline"
    assert not any("cannot tell a fingerprint" in t for _, t in page.paragraphs)

    page = _parse(render_html(_report(None), {}))
    assert "cross_session" not in page.sections and "cross-session-table" not in page.tables
    warn = [t for c, t in page.paragraphs if c == "warn"]
    assert warn and warn[0] == within_session_note().replace("`", "")


def test_write_report_draws_the_cross_session_figure(tmp_path):
    text = write_report(_report(_xs()), tmp_path).read_text(encoding="utf-8")
    assert 'src="cross_session.png"' in text
    assert (tmp_path / "cross_session.png").read_bytes().startswith(PNG_MAGIC)
    write_report(_report(None), tmp_path / "none")
    assert not (tmp_path / "none" / "cross_session.png").exists()


def test_the_terminal_summary_leads_with_the_cross_session_table(capsys):
    from explorer.report.commands import _cross_session_summary
    from rich.console import Console

    xs = _xs()
    _cross_session_summary(Console(width=200, force_terminal=False), xs)
    out = capsys.readouterr().out
    assert out.startswith(xs["headline"][:60])
    rows = out.split(xs["headline"][-40:], 1)[1]              # the table, after the headline
    line = next(x for x in rows.splitlines() if LABELS["global_twin"] in x)
    d = xs["methods"]["global_twin"]["directions"]
    assert f"{d[0]['hits']}/{d[0]['n']}" in line and f"{d[1]['hits']}/{d[1]['n']}" in line
    assert f"{d[0]['self_r']:.3f}" in line
    assert xs["methods"]["ec_twin_simulated"] is None and LABELS["ec_twin_simulated"] not in rows
    _cross_session_summary(Console(width=200), None)
    assert capsys.readouterr().out == ""
