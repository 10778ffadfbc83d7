"""numba's on-disk cache for the kernels, keyed by what they are compiled from.

A kernel is built per model (:func:`~explorer.sim.kernel.build_kernel`: a closure over the model's
``dfun`` and constants), and numba keys a closure's cache entry by a pickle of its closure cells.
Those hold numba dispatchers, whose pickles carry a random id per process, so numba's own cache
never hits for them and every process (each Ray actor of every study run) compiled its kernels
again: 4-6 s per model and precision.

:func:`cache_kernel` gives a kernel a cache keyed instead by the model's name, the kernel mode and a
hash of the source of every module the kernel is compiled from (``explorer/sim``,
``explorer/models`` and the module defining the model's ``dfun``), besides numba's own checks
(numba version, target CPU and its features, signature). Any change to those sources gives a new
key, so a stale entry is never loaded. The files live where numba keeps its caches (``__pycache__``
beside ``kernel.py``, else the user's cache folder; ``NUMBA_CACHE_DIR`` overrides). Set
``EXPLORER_JIT_CACHE=0`` to compile in every process instead.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path
from typing import Any

from numba.core.caching import FunctionCache


class KeyedCache(FunctionCache):
    """A numba function cache whose entries are keyed by ``key`` (with the signature and the target
    machine) instead of the function's bytecode and pickled closure."""

    def __init__(self, py_func: Any, key: str):
        super().__init__(py_func)
        self._key = key

    def _index_key(self, sig, codegen, *_rest):   # numba's (sig, codegen); later numbas may pass more
        return (sig, codegen.magic_tuple(), self._key)


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(set(paths)):
        h.update(str(p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def source_key(model: Any, mode: int) -> str | None:
    """The cache key of ``model``'s kernel in ``mode``: its name, the mode and a hash of the source files
    the kernel is compiled from; None when a source file cannot be read (then nothing is cached)."""
    try:
        dfun_file = inspect.getsourcefile(getattr(model.dfun, "py_func", model.dfun))
        here = Path(__file__).resolve().parent
        files = [*here.glob("*.py"), *(here.parent / "models").glob("*.py")]
        if dfun_file:
            files.append(Path(dfun_file).resolve())
        digest = _digest(files)
    except (OSError, TypeError):
        return None
    return f"{model.name}/{int(mode)}/{digest}"


def cache_kernel(kernel: Any, model: Any, mode: int) -> Any:
    """Give the numba dispatcher ``kernel`` (of ``model`` in ``mode``) its on-disk cache; returns it."""
    if os.environ.get("EXPLORER_JIT_CACHE", "1") == "0":
        return kernel
    key = source_key(model, mode)
    if key is not None:
        try:
            kernel._cache = KeyedCache(kernel.py_func, key)
        except Exception:  # noqa: BLE001 - no writable cache folder, or a numba without this API: compile each time
            pass
    return kernel
