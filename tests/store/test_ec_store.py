"""The EC stage's results in the signals store: written, read back, invisible until committed, kept per key."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.errors import StoreError
from explorer.store import SignalStore
from explorer.store import nodes


def _fit(seed: int, n: int = 4):
    rng = np.random.default_rng(seed)
    return rng.random((n, n)), rng.random((n, n)), rng.random((7, 3))


def test_ec_round_trip_and_keys(tmp_path):
    store = SignalStore(str(tmp_path / "s.zarr"))
    assert store.ec("a") is None and store.ec_keys("a") == []
    w, sc, trace = _fit(0)
    store.write_ec("a", "k1", w, sc, trace, {"status": "ok", "fc_r": 0.8}, {"G": 1.5, "f": [0.05] * 4}, 12)
    got = store.ec("a")
    np.testing.assert_array_equal(got["weights"], w)
    np.testing.assert_array_equal(got["sc"], sc)
    np.testing.assert_array_equal(got["trace"], trace)
    assert got["summary"] == {"status": "ok", "fc_r": 0.8} and got["best_trial"] == 12
    assert got["params"] == {"G": 1.5, "f": [0.05] * 4} and got["key"] == "k1"
    w2, _, _ = _fit(1)
    store.write_ec("a", "k2", w2, sc, trace, {"status": "ok"}, {"G": 2.0}, 30)
    assert store.ec_keys("a") == ["k1", "k2"]                      # the older fit is kept
    np.testing.assert_array_equal(store.ec("a")["weights"], w2)    # the newest is the default
    np.testing.assert_array_equal(store.ec("a", "k1")["weights"], w)
    assert "weights" not in store.ec("a", data=False)


def test_uncommitted_ec_is_invisible(tmp_path):
    store = SignalStore(str(tmp_path / "s.zarr"))
    w, sc, trace = _fit(2)
    store.write_ec("a", "k1", w, sc, trace, {}, {}, 0)
    import zarr

    zarr.open_group(store.zstore, path="ec/a/k1", mode="a").update_attributes({"committed": False})
    assert store.ec("a") is None and store.ec_keys("a") == []
    assert nodes.exists(store.zstore, "ec/a/k1/weights")


def test_ec_shape_mismatch_names_the_subject(tmp_path):
    store = SignalStore(str(tmp_path / "s.zarr"))
    with pytest.raises(StoreError, match="subject a"):
        store.write_ec("a", "k", np.ones((3, 3)), np.ones((4, 4)), np.ones((2, 3)), {}, {}, 0)
