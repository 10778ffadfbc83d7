"""The objective grammar: which scores exist, which way each is better, and objectives built from them.

An objective is a score name (``fc_r``) or a linear combination of scores, maximised, such as
``fc_r + fc_r_residual - fcd_ks`` (:func:`parse_objective`); :func:`objective_value` evaluates one
from a trial's scores. The scores themselves are computed in :mod:`explorer.scoring.scores`.
"""

from __future__ import annotations

import math
from typing import Mapping

from explorer.errors import ConfigError

__all__ = ["SCORES", "parse_objective", "objective_value"]

#: score name -> True when larger is better
SCORES: dict[str, bool] = {"fc_r": True, "fc_rmse": False, "fcd_ks": False, "fc_r_minus_fcd_ks": True,
                           "fc_r_residual": True}


def parse_objective(expr: str) -> tuple[tuple[float, str], ...]:
    """``"fc_r + 0.5*fc_r_residual - fcd_ks"`` -> ((1, "fc_r"), (0.5, "fc_r_residual"), (-1, "fcd_ks")).

    A plain score name gives one term. Raises ConfigError for an unknown score, a malformed term,
    or a term whose sign would reward a worse fit (a combination is maximised: higher-is-better
    scores need positive weights, lower-is-better ones negative weights).
    """
    text = str(expr).replace(" ", "")
    if text in SCORES:
        return ((1.0, text),)
    terms: list[tuple[float, str]] = []
    for sign, body in _split_terms(text, expr):
        weight, _, name = body.rpartition("*")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"objective {expr!r}: bad weight {weight!r} in term {body!r}") from None
        if name not in SCORES:
            raise ConfigError(f"unknown objective score {name!r} in {expr!r}; choose from {sorted(SCORES)}, or a "
                              "combination such as 'fc_r + fc_r_residual - fcd_ks'")
        w *= sign
        if not (math.isfinite(w) and w != 0):
            raise ConfigError(f"objective {expr!r}: the weight of {name} must be a finite non-zero number")
        if (w > 0) != SCORES[name]:
            better = "higher" if SCORES[name] else "lower"
            raise ConfigError(f"objective {expr!r}: {better} {name} is better, so it needs a "
                              f"{'+' if SCORES[name] else '-'} sign in a maximised combination")
        terms.append((w, name))
    if len({n for _, n in terms}) != len(terms):
        raise ConfigError(f"objective {expr!r} names a score twice")
    return tuple(terms)


def _split_terms(text: str, expr: str) -> list[tuple[float, str]]:
    out, sign, start = [], 1.0, 0
    if text[:1] in "+-":
        sign, start = (-1.0 if text[0] == "-" else 1.0), 1
    body = ""
    for ch in text[start:]:
        if ch in "+-" and body and not body.endswith(("e", "E")):
            out.append((sign, body))
            sign, body = (-1.0 if ch == "-" else 1.0), ""
        else:
            body += ch
    if not body:
        raise ConfigError(f"objective {expr!r} is empty or ends with an operator")
    out.append((sign, body))
    return out


def objective_value(scores: Mapping[str, float], expr: str) -> float:
    """The value of objective ``expr`` (a score name or a combination) from a trial's scores; NaN if any is."""
    return float(sum(w * float(scores.get(name, math.nan)) for w, name in parse_objective(expr)))

