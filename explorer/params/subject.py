"""A subject's full parameter set for a trial: fixed, data-derived, mapped, grouped, free and FIC-derived
values, from one place (:class:`SubjectSpace`). The search's trials, the report's re-simulations and its
baselines all go through it; :func:`explorer.search.space.subject_spaces` builds one per subject.

FIC is a model capability (:attr:`explorer.models.base.Model.fic`): :func:`with_fic` asks the model's
declaration which parameter it sets and how it is solved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from explorer.errors import StudyError
from explorer.params.names import split_name, split_noise

__all__ = ["SubjectSpace", "with_fic"]


@dataclass(frozen=True)
class SubjectSpace:
    """How one subject's free values become the parameter set it is simulated with (picklable).

    fixed: numbers and data-derived values (per-region lists).
    maps: parameter -> its map m (N,) in [0, 1].
    groups: parameter -> (group names, each region's group index (N,)).
    limits: per-region parameter -> its hard limits (low, high), for :meth:`refusal`.
    fic_target_hz: FIC's target excitatory rate in Hz, or None without FIC.
    """

    subject: str
    model: str
    fixed: dict[str, Any] = field(default_factory=dict)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    groups: dict[str, tuple[tuple[str, ...], np.ndarray]] = field(default_factory=dict)
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    fic_target_hz: float | None = None

    def expand(self, free: Mapping[str, float]) -> dict[str, Any]:
        """Fixed, data-derived, mapped, grouped and global free values (everything but FIC)."""
        out = dict(self.fixed)
        for name, v in free.items():
            p, kind, _ = split_name(name)
            if kind == "value":
                out[p] = float(v)
        for p, m in self.maps.items():
            out[p] = (float(free[f"{p}.base"]) + float(free[f"{p}.scale"]) * m).tolist()
        for p, (names, idx) in self.groups.items():
            values = np.array([float(free[f"{p}[{g}]"]) for g in names])
            out[p] = values[idx].tolist()
        return out

    def refusal(self, free: Mapping[str, float]) -> str | None:
        """Why ``free`` would put a regional value outside its hard limits (None when it would not).

        A map spans [base, base + scale] (m takes both 0 and 1), so both ends are checked.
        """
        for p in self.maps:
            lo, hi = self.limits[p]
            base, scale = float(free[f"{p}.base"]), float(free[f"{p}.scale"])
            ends = (base, base + scale)
            if min(ends) < lo or max(ends) > hi:
                return (f"refused: {p} = {p}.base + {p}.scale * map spans [{min(ends):.4g}, {max(ends):.4g}], "
                        f"outside its hard limits [{lo:g}, {hi:g}]")
        return None

    def full_batch(self, frees: Sequence[Mapping[str, float]], weights: np.ndarray) -> list[dict[str, Any] | str]:
        """Full parameter sets for a batch of free values on the connectome ``weights`` (N, N).

        With FIC, each set's FIC-derived values (rww_ei: J_I) come from the model's FIC solver for that set
        and ``weights``, solved for the whole batch at once (:func:`with_fic`). An entry is a string (the FAIL reason)
        for a refused candidate or one whose FIC does not converge.
        """
        out: list[dict[str, Any] | str] = []
        for f in frees:
            why = self.refusal(f)
            out.append(why if why else self.expand(f))
        return with_fic(out, weights, self.model, self.fic_target_hz)

    def full(self, free: Mapping[str, float], weights: np.ndarray) -> dict[str, Any]:
        """One full parameter set (:meth:`full_batch`); StudyError naming the subject when it has none."""
        got = self.full_batch([free], weights)[0]
        if isinstance(got, str):
            raise StudyError(f"subject {self.subject}: {got}")
        return got


def with_fic(params: Sequence[dict[str, Any] | str], weights: np.ndarray, model: str,
             target_hz: float | None) -> list[dict[str, Any] | str]:
    """``params`` with the FIC-derived per-region values set (strings, already failures, pass through).

    The model declares what FIC sets and its solver (:class:`~explorer.models.base.FicSpec`). A set
    whose FIC does not converge becomes ``"fic did not converge: <why>"``. No-op when ``target_hz``
    is None. Raises StudyError when the model declares no FIC.
    """
    if target_hz is None:
        return list(params)
    # numba models: kept out of `explorer --help` (which imports explorer.search, hence this module)
    from explorer.models import get_model
    from explorer.models.arrays import param_array

    m = get_model(model)
    if m.fic is None:
        raise StudyError(f"model {m.name!r} declares no feedback inhibition control: set params.fic to false")
    todo = [i for i, p in enumerate(params) if not isinstance(p, str)]
    out = list(params)
    if not todo:
        return out
    w = np.asarray(weights, dtype=np.float64)
    p = param_array(m, split_noise([params[i] for i in todo], 0.0)[0], w.shape[0])
    res = m.fic.solve(p, w, target_hz)
    values = getattr(res, m.fic.param)
    for b, i in enumerate(todo):
        if res.converged[b]:
            out[i] = {**params[i], m.fic.param: values[:, b].tolist()}
        else:
            out[i] = f"fic did not converge: {res.reason[b]}"
    return out
