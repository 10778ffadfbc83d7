"""The connectome in the kernel's form: CSR of the nonzero weights with integer delays in steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.errors import SimulationError


@dataclass(frozen=True)
class Connectome:
    """CSR of the nonzero weights: row i (receiving region) holds ``W[i, j]`` for sending regions j.

    ``delay[k]`` is the conduction delay of nonzero k in steps, ``round(L_ij / v / dt)``.
    """

    n: int
    rowptr: np.ndarray  # [n + 1] int64
    col: np.ndarray  # [nnz] int64
    weight: np.ndarray  # [nnz] float64
    delay: np.ndarray  # [nnz] int64
    wsum: np.ndarray  # [n] float64, row sums of W

    @property
    def max_delay(self) -> int:
        return int(self.delay.max()) if self.delay.size else 0

    @property
    def nnz(self) -> int:
        return int(self.col.size)


def check_matrices(weights, lengths) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return (W, L) as float64 square matrices; SimulationError with the reason."""
    try:
        w = np.asarray(weights, dtype=np.float64)
        ln = np.asarray(lengths, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SimulationError(f"weights and lengths must be numeric (N, N) arrays: {exc}") from None
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise SimulationError(f"weights must be a square (N, N) matrix with N >= 1, got shape {w.shape}")
    if ln.shape != w.shape:
        raise SimulationError(f"lengths shape {ln.shape} does not match weights shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise SimulationError("weights contain NaN or inf; clean the connectome first")
    if not np.all(np.isfinite(ln)):
        raise SimulationError("lengths contain NaN or inf; clean the connectome first")
    if np.any(ln < 0):
        i, j = np.argwhere(ln < 0)[0]
        raise SimulationError(f"lengths must be >= 0 mm; lengths[{i}, {j}] = {ln[i, j]}")
    return w, ln


def build_connectome(weights, lengths, velocity: float, dt_ms: float) -> Connectome:
    """CSR connectome with delays ``round(L / velocity / dt_ms)`` steps (velocity in m/s = mm/ms)."""
    w, ln = check_matrices(weights, lengths)
    if not (velocity > 0):
        raise SimulationError(f"velocity must be > 0 m/s, got {velocity}")
    n = w.shape[0]
    rows, cols = np.nonzero(w)
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    rowptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(rowptr, rows + 1, 1)
    rowptr = np.cumsum(rowptr)
    if np.isinf(velocity):
        delay = np.zeros(rows.size, dtype=np.int64)
    else:
        delay = np.rint(ln[rows, cols] / velocity / dt_ms).astype(np.int64)
    return Connectome(n=n, rowptr=rowptr, col=cols.astype(np.int64), weight=w[rows, cols].copy(),
                      delay=delay, wsum=w.sum(axis=1))
