"""Process entry points for the store tests (importable by spawned children)."""

from __future__ import annotations

import hashlib
import os
import signal

import numpy as np

N_REGIONS = 12
N_TIME = 40


def trial_data(subject: str, number: int) -> dict:
    """Deterministic arrays and record of one trial."""
    seed = 1000 * (ord(subject[-1]) % 7) + number
    rng = np.random.default_rng(seed)
    bold = rng.standard_normal((N_TIME, N_REGIONS)).astype(np.float32)
    fc = np.corrcoef(bold.T).astype(np.float32)
    return {"bold": bold, "fc": fc, "params": {"G": 0.1 * number, "J": 1.0 + number % 3}, "seed": seed,
            "scores": {"fc_r": float(rng.uniform()), "fcd_ks": float(rng.uniform())}}


def trial_record(subject: str, number: int, d: dict | None = None):
    """The COMPLETE TrialRecord of :func:`trial_data`'s trial."""
    from explorer.records import TrialRecord

    d = d or trial_data(subject, number)
    return TrialRecord(subject=subject, number=number, params=d["params"], seed=d["seed"], state="COMPLETE",
                       scores=d["scores"])


def write_trials(url: str, jobs: list[tuple[str, int]]) -> None:
    from explorer.store import SignalStore

    store = SignalStore(url)
    for subject, number in jobs:
        d = trial_data(subject, number)
        store.write_trial(trial_record(subject, number, d), d["bold"], d["fc"], tr_s=2.0)


def write_then_die(url: str, subject: str, number: int) -> None:
    """Write a trial's arrays, then SIGKILL itself before the commit marker."""
    from explorer.store import SignalStore

    def die(self, group, marker):
        os.kill(os.getpid(), signal.SIGKILL)

    SignalStore._commit = die
    write_trials(url, [(subject, number)])


def checksum(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()
