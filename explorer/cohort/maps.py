"""Regional heterogeneity maps and region groups: where per-region model parameters come from.

A heterogeneous parameter is ``p_i = base + scale * m_i`` with a map ``m`` normalised to [0, 1],
or one free value per group of regions. Maps come from the subject's data (:func:`sc_strength`,
:func:`fc_gradient`) or from a region table file (:func:`map_from_file`); groups from the FC
(:func:`fc_networks`) or from a file (:func:`groups_from_file`).

Region tables are CSV or TSV files with a header row holding a ``label`` column (the cohort's
atlas labels) and a ``value`` (maps) or ``group`` (groups) column, one row per region, in any
order. All functions are pure and deterministic; errors are :class:`~explorer.errors.ConfigError`
naming the file, label or matrix at fault and saying what to do.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from explorer.errors import ConfigError

__all__ = [
    "MAP_SOURCES",
    "GROUP_SOURCES",
    "normalise_map",
    "sc_strength",
    "fc_gradient",
    "fc_networks",
    "read_region_table",
    "map_from_file",
    "groups_from_file",
    "group_names",
    "parse_group_source",
]

#: built-in map sources -> one-line documentation
MAP_SOURCES: dict[str, str] = {
    "sc_strength": "node strength of the subject's SC (sum of incoming weights), normalised to [0, 1]",
    "fc_gradient": "principal FC gradient of the subject's empirical FC (Margulies et al. 2016 "
    "diffusion map), oriented to correlate positively with mean FC, normalised to [0, 1]",
    "fc_gradient_cohort": "the same gradient of the study's cohort-mean empirical FC, one map shared by "
    "every subject (single-scan gradients are noisy: on gw, the two halves of one scan give Spearman "
    "0.25-0.84)",
}

#: built-in group sources -> one-line documentation (``<k>`` is the number of groups)
GROUP_SOURCES: dict[str, str] = {
    "fc_networks<k>": "k data-derived networks (k-means on the FC's diffusion embedding, fixed seed), "
    "named net1..netk in order of their mean principal-gradient value, e.g. fc_networks7",
}

#: fraction of each FC row kept before the cosine affinity (Margulies et al. 2016: top 10%)
TOP_FRACTION = 0.1
#: diffusion-map anisotropy (0.5 = Fokker-Planck normalisation, as Margulies et al. 2016)
ALPHA = 0.5
#: fixed seed and restarts of the k-means behind :func:`fc_networks`
KMEANS_SEED = 0
KMEANS_RESTARTS = 20

_GROUP_SOURCE_RE = re.compile(r"fc_networks(\d+)")


# ---------------------------------------------------------------------------------------------
# maps from arrays


def normalise_map(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    """Min-max scale a 1-D map to [0, 1] (float64). ``what`` names the map in errors.

    ConfigError when the map is not 1-D, empty, has a non-finite value, or is constant.
    """
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: the map is not numeric: give one number per region") from None
    if v.ndim != 1 or v.size == 0:
        raise ConfigError(f"{what}: a map must be one number per region, got shape {v.shape}")
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise ConfigError(
            f"{what}: the map has {bad.size} non-finite value(s) (regions {bad[:5].tolist()} 0-based): "
            "give a finite number for every region"
        )
    lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        raise ConfigError(
            f"{what}: the map is constant ({lo:g} in every region), so it carries no heterogeneity: "
            "use a map that varies across regions, or a homogeneous parameter"
        )
    return (v - lo) / (hi - lo)


def _square(a: np.ndarray, what: str) -> np.ndarray:
    m = np.asarray(a, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ConfigError(f"{what}: must be a square (N, N) matrix with N >= 2, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        n_bad = int(np.count_nonzero(~np.isfinite(m)))
        raise ConfigError(
            f"{what}: has {n_bad} NaN/inf value(s): fix or recompute the matrix (e.g. a region with "
            "a flat BOLD signal gives NaN correlations; drop that region)"
        )
    return m


def sc_strength(weights: np.ndarray, *, what: str = "SC weights") -> np.ndarray:
    """Node strength: total incoming weight of each region (row sums of W, W[i, j] = j -> i,
    diagonal excluded), in the weights' units, then normalised to [0, 1]. Shape (N,).
    """
    w = _square(weights, what)
    s = w.sum(axis=1) - np.diag(w)
    return normalise_map(s, f"{what} (node strength)")


def _affinity(fc: np.ndarray, what: str) -> np.ndarray:
    """Margulies et al. 2016 affinity: each row's top 10% off-diagonal values kept (others 0),
    cosine similarity between rows, negative similarities set to 0. Shape (N, N)."""
    m = _square(fc, what)
    n = m.shape[0]
    keep = max(1, int(np.ceil(TOP_FRACTION * (n - 1))))
    x = m.copy()
    np.fill_diagonal(x, -np.inf)  # self-correlation carries no information (and is 0 or 1 by convention)
    order = np.argsort(-x, axis=1, kind="stable")[:, :keep]
    t = np.zeros_like(m)
    rows = np.arange(n)[:, None]
    t[rows, order] = m[rows, order]
    norms = np.linalg.norm(t, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ConfigError(
            f"{what}: region(s) {zero[:5].tolist()} (0-based) have no non-zero connectivity among their "
            "strongest correlations: drop these regions from the cohort"
        )
    u = t / norms[:, None]
    a = u @ u.T
    a[a < 0] = 0.0
    return (a + a.T) / 2  # exact symmetry


def _diffusion(a: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Diffusion map (alpha = 0.5) of affinity ``a``: the ``n_components`` leading non-trivial
    eigenvalues (descending) and right eigenvectors of the Markov matrix, shape (N, n_components).
    """
    d = a.sum(axis=1)
    la = a / np.outer(d**ALPHA, d**ALPHA)
    d2 = la.sum(axis=1)
    sq = np.sqrt(d2)
    s = la / np.outer(sq, sq)  # symmetric conjugate of the Markov matrix D2^-1 La
    u0 = sq / np.linalg.norm(sq)  # its trivial eigenvector (eigenvalue 1)
    s = s - np.outer(u0, u0)  # deflate it, so a disconnected affinity keeps its block vectors
    s = (s + s.T) / 2
    lam, vec = np.linalg.eigh(s)
    idx = np.argsort(-lam, kind="stable")[:n_components]
    psi = vec[:, idx] / sq[:, None]  # right eigenvectors of the Markov matrix
    return lam[idx], psi


def _principal(a: np.ndarray, fc: np.ndarray) -> np.ndarray:
    """First non-trivial diffusion component, oriented to correlate positively with row-mean FC."""
    _, psi = _diffusion(a, 1)
    g = psi[:, 0]
    n = fc.shape[0]
    mean_fc = (fc.sum(axis=1) - np.diag(fc)) / (n - 1)
    r = np.corrcoef(g, mean_fc)[0, 1] if np.std(mean_fc) > 0 else 0.0
    if not np.isfinite(r) or abs(r) < 1e-12:  # no orientation from mean FC: largest |value| positive
        r = g[int(np.argmax(np.abs(g)))]
    return g if r > 0 else -g


def fc_gradient(fc: np.ndarray, *, what: str = "FC") -> np.ndarray:
    """Principal gradient of an (N, N) FC matrix (Margulies et al. 2016), normalised to [0, 1].

    Each row's top 10% off-diagonal values kept, cosine affinity between rows (negative -> 0),
    diffusion map with alpha = 0.5, first non-trivial component; oriented to correlate positively
    with each region's mean FC. Deterministic. ``what`` names the matrix in errors.
    """
    m = _square(fc, what)
    g = _principal(_affinity(m, what), m)
    return normalise_map(g, f"{what} (principal gradient)")


def _kmeans(x: np.ndarray, k: int, seed: int, restarts: int) -> np.ndarray:
    """Lloyd's k-means with k-means++ starts from a fixed Generator; best of ``restarts`` by inertia.
    Returns labels 0..k-1, every cluster non-empty."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        centres = [x[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min(((x[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
            tot = d2.sum()
            p = d2 / tot if tot > 0 else np.full(n, 1.0 / n)
            centres.append(x[rng.choice(n, p=p)])
        c = np.array(centres)
        labels = np.full(n, -1)
        for _ in range(300):
            d2 = ((x[:, None, :] - c[None]) ** 2).sum(-1)
            new = np.argmin(d2, axis=1)
            for j in range(k):  # refill an empty cluster with the point farthest from its centre
                if not np.any(new == j):
                    far = np.argsort(-d2[np.arange(n), new], kind="stable")
                    for i in far:
                        if np.count_nonzero(new == new[i]) > 1:
                            new[i] = j
                            break
            if np.array_equal(new, labels):
                break
            labels = new
            c = np.array([x[labels == j].mean(axis=0) for j in range(k)])
        inertia = float(((x - c[labels]) ** 2).sum())
        if inertia < best_inertia - 1e-12:
            best, best_inertia = labels.copy(), inertia
    assert best is not None
    return best


def fc_networks(fc: np.ndarray, k: int, *, what: str = "FC") -> list[str]:
    """Partition the N regions into ``k`` data-derived networks from an (N, N) FC matrix.

    Spectral clustering: the ``k`` leading non-trivial diffusion components of the
    :func:`fc_gradient` affinity (each scaled by lambda / (1 - lambda), the multiscale diffusion
    map), then k-means (k-means++, fixed seed, several restarts). Returns one name per region,
    ``"net1".."netk"`` numbered by the group's mean principal-gradient value (net1 lowest); every
    group is non-empty. ConfigError unless 2 <= k <= N / 2.

    Names are reproducible for the same matrix, but a name need not mean the same regions in two
    subjects' FCs (single-scan FC is noisy): use one matrix (e.g. the cohort-mean FC) for groups
    that must be comparable across subjects. When the affinity falls apart into disconnected
    pieces, the principal gradient (and so the numbering, not the partition) is not unique.
    """
    m = _square(fc, what)
    n = m.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not (2 <= k <= n / 2):
        raise ConfigError(
            f"{what}: fc_networks needs 2 <= k <= N/2 = {n // 2} networks for N = {n} regions, got {k!r}: "
            f"use e.g. fc_networks{min(7, max(2, n // 2))}"
        )
    k = int(k)
    a = _affinity(m, what)
    lam, psi = _diffusion(a, k)
    scale = lam / np.maximum(1.0 - lam, 1e-9)  # 1 - lam ~ 0 for a disconnected affinity
    x = psi * np.clip(scale, 0.0, None)[None, :]
    x = x / (np.abs(x).max() or 1.0)  # scale-free for the k-means tolerances
    labels = _kmeans(x, k, KMEANS_SEED, KMEANS_RESTARTS)
    g = _principal(a, m)
    means = [(float(g[labels == j].mean()), int(np.flatnonzero(labels == j)[0])) for j in range(k)]
    rank = {j: r for r, j in enumerate(sorted(range(k), key=lambda j: means[j]))}
    return [f"net{rank[int(j)] + 1}" for j in labels]


# ---------------------------------------------------------------------------------------------
# maps and groups from region tables


def _examples(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(repr(s) for s in items[:n])
    return shown + (f" (and {len(items) - n} more)" if len(items) > n else "")


def read_region_table(path: str | Path, labels: Sequence[str] | None, column: str) -> dict[str, str]:
    """Read a CSV/TSV region table (delimiter sniffed, header row with ``label`` and ``column``).

    Returns label -> the (stripped) cell text of ``column``, for exactly the cohort's ``labels``
    (``labels`` None: every row, in file order, without checking labels: for config validation).
    ConfigError naming the file for: missing file, missing columns, duplicate labels, labels the
    cohort does not have, cohort labels missing from the file, empty cells.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{p}: region table not found: check the path")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"{p}: cannot read the region table ({exc}): save it as a UTF-8 CSV or TSV file") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    want = f"a header row with 'label' and {column!r} columns, then one row per region"
    if not lines:
        raise ConfigError(f"{p}: the region table is empty: write {want}")
    try:
        delimiter = csv.Sniffer().sniff(lines[0], delimiters=",\t;").delimiter
    except csv.Error:
        delimiter = "\t" if "\t" in lines[0] else ","
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    missing_cols = [c for c in ("label", column) if c.lower() not in lower]
    if missing_cols:
        raise ConfigError(
            f"{p}: no column(s) {missing_cols} in the header; columns found: {header}: write {want}"
        )
    li, ci = lower.index("label"), lower.index(column.lower())
    cohort = list(labels) if labels is not None else []
    known = set(cohort) if labels is not None else None
    out: dict[str, str] = {}
    first_row: dict[str, int] = {}
    dup: list[str] = []
    unknown: list[str] = []
    empty: list[str] = []
    for r, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row]
        label = cells[li] if li < len(cells) else ""
        value = cells[ci] if ci < len(cells) else ""
        if not label:
            empty.append(f"row {r} column 'label'")
            continue
        if label in first_row:
            dup.append(f"{label!r} (rows {first_row[label]} and {r})")
            continue
        first_row[label] = r
        if known is not None and label not in known:
            unknown.append(label)
            continue
        if not value:
            empty.append(f"label {label!r} (row {r}) column {column!r}")
            continue
        out[label] = value
    if dup:
        raise ConfigError(f"{p}: duplicate label(s) {', '.join(dup[:5])}: keep one row per region")
    problems = []
    if unknown:
        problems.append(
            f"{len(unknown)} label(s) the cohort does not have: {_examples(unknown)} "
            f"(the cohort's atlas labels look like {_examples(cohort, 3)})"
        )
    if labels is None:
        if empty:
            raise ConfigError(f"{p}: empty cell(s) at {', '.join(empty[:5])}: fill in every cell")
        return out
    absent = [lab for lab in cohort if lab not in first_row]
    if absent:
        problems.append(f"{len(absent)} cohort label(s) missing from the file: {_examples(absent)}")
    if problems:
        raise ConfigError(
            f"{p}: {'; '.join(problems)}: give exactly one row per cohort region, labelled with the "
            "cohort's atlas labels (after any dropped regions)"
        )
    if empty:
        raise ConfigError(f"{p}: empty cell(s) at {', '.join(empty[:5])}: fill in every cell")
    return {lab: out[lab] for lab in cohort}


def table_groups(path: str | Path) -> list[str]:
    """The distinct group names of a label,group table, in first-appearance order (labels unchecked).

    ConfigError naming the file for an unreadable table or a group name that is not letters,
    digits, '_' or '-' (names become free parameters ``P[group]``).
    """
    names = group_names(list(read_region_table(path, None, "group").values()))
    bad = [g for g in names if not re.fullmatch(r"[A-Za-z0-9_\-]+", g)]
    if bad:
        raise ConfigError(f"{Path(path)}: group name(s) {_examples(bad)} may hold only letters, digits, '_' and '-' "
                          "(they become free parameters such as J_NMDA[visual]): rename them")
    return names


def table_values(path: str | Path) -> dict[str, float]:
    """label -> value of a label,value table (labels unchecked); ConfigError naming file, label and value."""
    out = {}
    for label, text in read_region_table(path, None, "value").items():
        try:
            out[label] = float(text)
        except ValueError:
            raise ConfigError(f"{Path(path)}: label {label!r} has value {text!r}, not a number") from None
    return out


def map_from_file(path: str | Path, labels: Sequence[str]) -> np.ndarray:
    """The ``value`` column of a region table as floats in the order of ``labels``, normalised
    to [0, 1]. Shape (N,). ConfigError naming file, label and value for a non-numeric value."""
    cells = read_region_table(path, labels, "value")
    out = np.empty(len(cells))
    for i, (label, text) in enumerate(cells.items()):
        try:
            out[i] = float(text)
        except ValueError:
            out[i] = np.nan
        if not np.isfinite(out[i]):
            raise ConfigError(
                f"{Path(path).expanduser()}: value {text!r} of label {label!r} is not a finite number: "
                "write a plain number (e.g. 0.25)"
            )
    return normalise_map(out, f"{Path(path).expanduser()} (column 'value')")


def groups_from_file(path: str | Path, labels: Sequence[str]) -> list[str]:
    """The ``group`` column of a region table in the order of ``labels`` (one name per region)."""
    return list(read_region_table(path, labels, "group").values())


def group_names(groups: Sequence[str]) -> list[str]:
    """The distinct group names, in order of first appearance."""
    return list(dict.fromkeys(groups))


def parse_group_source(token: str) -> int | None:
    """k for a built-in group source like ``"fc_networks7"``; None for anything else (e.g. a file)."""
    m = _GROUP_SOURCE_RE.fullmatch(str(token).strip())
    return int(m.group(1)) if m else None


def source_group_names(src: str) -> list[str] | None:
    """The group names a ``params.groups`` source gives (``net1..netk`` for ``fc_networks<k>``, or a
    label,group file's), or None when it is neither a token nor a readable file."""
    k = parse_group_source(src)
    if k is not None:
        return [f"net{i}" for i in range(1, k + 1)]
    if not Path(src).is_file():
        return None
    return table_groups(src)
