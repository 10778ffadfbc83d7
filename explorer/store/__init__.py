"""Signals store: zarr v3 (local folder or any fsspec URL) + a lazy xarray reader.

- :class:`SignalStore`: actors write trials concurrently (each call's trials under its own prefix,
  one group per call with :meth:`SignalStore.write_trials`, visible only once committed); the driver
  writes empirical data and packs subjects into shards.
- :func:`open_signals`: the whole study as one lazy ``xarray.Dataset``.
- :func:`parse_location`, :func:`resolve_location`, :meth:`SignalStore.resolve`: a trial's recorded
  ``signals`` location (``<url>#subject=<id>&trial=<n>``), valid before and after packing.
"""

from explorer.store.reader import open_signals, resolve_signals_url
from explorer.store.records import from_attrs, simulation_attrs, to_attrs
from explorer.store.signals import (SHARD_TRIALS, SignalStore, TrialSignals, best_trials, parse_location,
                                    region_chunk, resolve_location, trial_location)
from explorer.store.urls import SIGNALS_NAME, is_remote, join, open_store

__all__ = ["SignalStore", "TrialSignals", "open_signals", "resolve_signals_url", "best_trials", "region_chunk",
           "SHARD_TRIALS", "SIGNALS_NAME", "is_remote", "join", "open_store", "parse_location", "resolve_location",
           "trial_location", "from_attrs", "simulation_attrs", "to_attrs"]
