"""The kernels' on-disk cache: a second process loads what the first compiled, bit for bit, and any change
to the sources a kernel is compiled from gives it a new key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from explorer.models import get_model
from explorer.sim.jitcache import source_key

_RUN = textwrap.dedent("""
    import json, sys
    import numpy as np
    from explorer.models import get_model
    from explorer.sim import simulate
    from explorer.sim.kernel import get_kernel
    rng = np.random.default_rng(3)
    w = rng.random((6, 6)); np.fill_diagonal(w, 0.0)
    ds = simulate("hopf", w, 10.0 + 40.0 * rng.random((6, 6)), [{"G": 0.4}, {"G": 0.9}], duration_s=4.0, dt_ms=1.0,
                  noise_sigma=0.02, seed=[1, 2], bold_tr_s=2.0, transient_s=0.0)
    stats = get_kernel(get_model("hopf")).stats
    np.save(sys.argv[1], ds.bold.values)
    print(json.dumps({"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values())}))
""")


def _run(tmp_path, name, **env):
    out = tmp_path / f"{name}.npy"
    proc = subprocess.run([sys.executable, "-c", _RUN, str(out)], capture_output=True, text=True, check=True,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), **env})
    return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(out)


def test_a_second_process_loads_the_kernel_from_the_cache_bit_for_bit(tmp_path):
    first, bold1 = _run(tmp_path, "first")
    second, bold2 = _run(tmp_path, "second")
    uncached, bold3 = _run(tmp_path, "uncached", EXPLORER_JIT_CACHE="0")
    assert first["hits"] == 0 and first["misses"] >= 1         # compiled, then saved
    assert second["hits"] >= 1 and second["misses"] == 0       # loaded, not compiled
    assert uncached["hits"] == 0
    assert np.isfinite(bold1).all()
    np.testing.assert_array_equal(bold1, bold2)
    np.testing.assert_array_equal(bold1, bold3)


def test_the_key_follows_the_model_mode_and_sources(tmp_path, monkeypatch):
    """A model defined in a file of its own: editing that file changes its kernel's key."""
    hopf, rww = get_model("hopf"), get_model("rww_ei")
    assert source_key(hopf, 2) != source_key(rww, 2) != source_key(rww, 1)
    assert source_key(hopf, 2) == source_key(hopf, 2)
    module = tmp_path / "my_model.py"
    module.write_text("def dfun(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import my_model

    class Model:
        name = "mine"
        dfun = staticmethod(my_model.dfun)

    before = source_key(Model, 0)
    module.write_text("def dfun(x):\n    return 2 * x\n")
    importlib.reload(my_model)
    Model.dfun = staticmethod(my_model.dfun)
    after = source_key(Model, 0)
    assert before is not None and after is not None and before != after
