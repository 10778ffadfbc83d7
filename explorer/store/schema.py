"""The signals store's schema: its layout, format version, variables and chunking.

Layout (``<url>`` is a local folder or any fsspec URL)::

    <url>/                                     root group, attrs {"explorer_signals": 1, "simulation": {model,
                                               dt_ms, duration_s, ...}, "git_revision"} (driver, SignalStore.describe)
      subjects/<subject>/
        empirical/        bold [time, region], fc [region, region]; attrs tr_s, labels (driver)
        staging/<first number:06d>-<attempt uuid>/   one group per write_trials call (actors)
            bold [trial, time, region]  fc [trial, region, region]  (neural [trial, time, region], optional)
                      each ONE uncompressed chunk (temporary: packing compresses, and one trial
                      can then be read alone); trials in number order
            zarr.json attrs: {explorer_trials: 1, committed: false, numbers, attempt_id, started} while
                      writing; the commit marker, written last in one atomic put, adds committed=true,
                      committed_at, trials (one record per trial, in array order:
                      explorer.store.records.to_attrs), deleted (numbers deleted since; [] at first),
                      tr_s, neural_dt_ms, shapes (per trial), simulation, git_revision
        staging/<number:06d>-<attempt uuid>/   a one-trial group written by older versions (still read):
            bold [time, region]  fc [region, region]; attrs explorer_trial=1 and the trial's marker
        packed/           attrs {current: <uuid>, trials: [marker per trial, ordered by number]}
            <uuid>/bold [trial, time, region]  fc [trial, region, region]  (neural ...)
                      sharded: one shard holds ``shard_trials`` trials; inner chunks
                      (1 trial, all times, <=16 regions)
      report/<connectome>/<key>/              the report's re-simulations (never Optuna trials), driver
            fc [region, region]; attrs: the commit marker (params, seed, scores), written last

A subject's trials: the packed ones, plus, per trial number not packed, the copy in the most
recently committed staging group that holds it and has not deleted it (a retried trial has
several): :mod:`explorer.store.index`.

Concurrency rules (zarr-developers/zarr-python#3682: two writers of one chunk or shard lose data):

- actors only write below their own ``staging/<number>-<uuid>/`` prefix (a fresh uuid per
  call, so a retry never collides with a killed attempt), and never touch a committed group
  (:mod:`explorer.store.staging`, :mod:`explorer.store.writers`);
- a trial is visible only once its group carries ``committed: true``; that attribute is written
  after every array, in a single (atomic) object put, for all the trials of the group at once;
- writing empirical data, packing, ``keep_best`` and deleting trials are for the single driver
  (:mod:`explorer.store.packing`).
"""

from __future__ import annotations

FORMAT_VERSION = 1
#: trials per shard of a packed array (128 x 1200 TRs x 80 regions x 4 B = 49 MB before compression)
SHARD_TRIALS = 128
#: regions per inner chunk of a packed array, at most
REGION_CHUNK = 16
#: the arrays a trial may have: BOLD (time, region), FC (region, region), neural (time, region)
VARIABLES = ("bold", "fc", "neural")


def region_chunk(n_regions: int, target: int = REGION_CHUNK) -> int:
    """Regions per inner chunk: the largest divisor of ``n_regions`` in [target/2, target], else all."""
    if n_regions <= target:
        return n_regions
    for d in range(target, max(target // 2, 1) - 1, -1):
        if n_regions % d == 0:
            return d
    return n_regions


def staging_path(sid: str, name: str | None = None) -> str:
    """``subjects/<sid>/staging`` or, with ``name``, one staging group's path."""
    return f"subjects/{sid}/staging" if name is None else f"subjects/{sid}/staging/{name}"


def packed_path(sid: str, current: str | None = None) -> str:
    """``subjects/<sid>/packed`` (the pointer group) or, with ``current``, one packed copy's path."""
    return f"subjects/{sid}/packed" if current is None else f"subjects/{sid}/packed/{current}"
