"""Which stored ECs the report uses: an ok fit from the current best trial; a failed, unimproved or stale one
leaves the subject its global twin, with the reason."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from explorer.report import ec_twins


class _Store:
    def __init__(self, fits):
        self.fits = fits

    def ec(self, sid):
        return self.fits.get(sid)


def _fit(status, best_trial, reason=""):
    return {"key": "k" * 20, "summary": {"status": status, "reason": reason, "fc_r_start": 0.4, "fc_r": 0.8,
                                         "iterations": 12, "wall_s": 1.5}, "best_trial": best_trial,
            "weights": np.ones((3, 3)), "params": {}}


def test_only_an_ok_ec_from_the_current_twin_is_used():
    subjects = [SimpleNamespace(id=i) for i in ("ok", "flat", "stale", "none")]
    store = _Store({"ok": _fit("ok", 7), "flat": _fit("no_improvement", 3, "did not improve on the global twin"),
                    "stale": _fit("ok", 2)})
    got = ec_twins.usable_ecs(store, subjects, {"ok": 7, "flat": 3, "stale": 5, "none": 1})
    assert got["ok"]["use"] and got["ok"]["why"] == ""
    assert not got["flat"]["use"] and got["flat"]["why"].startswith("no_improvement: did not improve")
    assert not got["stale"]["use"] and "fitted from trial 2, the best is now 5" in got["stale"]["why"]
    assert not got["none"]["use"] and "no EC stored" in got["none"]["why"]
    rows = ec_twins.summary_rows(subjects, got, {"ok": {"fc_r_mean": 0.7, "fc_r_sd": 0.01}},
                                 {s.id: {"fc_r_mean": 0.5} for s in subjects}, {"ok": 0.81})
    assert rows["ok"]["used"] and rows["ok"]["fc_r_simulated"] == 0.7 and rows["ok"]["fc_r_analytic"] == 0.81
    assert rows["flat"]["fc_r_simulated"] is None and rows["flat"]["fc_r_global_twin"] == 0.5
    assert rows["none"]["status"] is None and rows["stale"]["iterations"] == 12


def test_an_ec_twin_has_a_connectome_name_of_its_own():
    assert ec_twins.ec_connectome("NAP_001_ses-1", "abcdef0123456789abcd") == "NAP_001_ses-1-ec-abcdef012345"
