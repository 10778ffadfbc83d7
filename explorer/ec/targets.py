"""What an EC is fitted to: a subject's empirical FC and lag-tau covariance, and the fitted connections."""

from __future__ import annotations

import re

import numpy as np

from explorer.ec.linear import Moments, empirical_moments
from explorer.scoring.features import preprocess
from explorer.scoring.options import FeatureOptions

_SIDE = re.compile(r"^(?P<stem>.*?)(?P<sep>[_ .-]?)(?P<side>[LR]|Left|Right|lh|rh)$", re.IGNORECASE)


def empirical_targets(bold: np.ndarray, tr_s: float, features: FeatureOptions, lag: int) -> Moments:
    """FC and lag-``lag`` covariance (TRs) of a ``(T, N)`` BOLD after the cohort's preprocessing.

    ``features`` is the cohort's FeatureOptions (detrend, band-pass, z-score), so that the EC is fitted to
    the same FC the report scores against.
    """
    return empirical_moments(preprocess(bold, tr_s, features), lag)


def homotopic_pairs(labels: list[str]) -> list[tuple[int, int]]:
    """Index pairs (i, j) of left/right homologues by label (``X_L``/``X_R``, ``lh``/``rh``, ...)."""
    sides: dict[str, dict[str, int]] = {}
    for i, name in enumerate(labels):
        m = _SIDE.match(str(name))
        if m:
            side = m["side"].lower()[0] if m["side"].lower() not in ("lh", "rh") else m["side"].lower()[0]
            sides.setdefault(m["stem"].lower(), {})[side] = i
    return [(d["l"], d["r"]) for d in sides.values() if "l" in d and "r" in d]


def connection_mask(weights: np.ndarray, labels: list[str], mask: str) -> np.ndarray:
    """Boolean (N, N) of the connections an EC fits: SC > 0 (off the diagonal), and for
    ``"sc+homotopic"`` also both directions of every homotopic pair."""
    out = np.asarray(weights) > 0
    np.fill_diagonal(out, False)
    if mask == "sc+homotopic":
        for i, j in homotopic_pairs(list(labels)):
            out[i, j] = out[j, i] = True
    return out
