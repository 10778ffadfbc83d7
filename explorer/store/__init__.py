"""Signals store: zarr v3 (local folder or any fsspec URL) + a lazy xarray reader.

- :class:`SignalStore`: actors write trials concurrently (each call's trials under its own prefix,
  one group per call with :meth:`SignalStore.write_trials`, visible only once committed); the driver
  writes empirical data and packs subjects into shards.
- :func:`open_signals`: the whole study as one lazy ``xarray.Dataset``.
- :class:`TrialWriter`: how ``write_trials`` writes (:class:`FileWriter` for local folders,
  :class:`ZarrWriter` for fsspec URLs; :func:`writer_for` picks by URL, ``SignalStore(url, writer=...)``).
- :func:`parse_location`, :func:`resolve_location`, :meth:`SignalStore.resolve`: a trial's recorded
  ``signals`` location (``<url>#subject=<id>&trial=<n>``), valid before and after packing.
"""

from explorer.store.locations import parse_location, trial_location
from explorer.store.packing import best_trials
from explorer.store.reader import open_signals, resolve_signals_url
from explorer.store.records import from_attrs, simulation_attrs, to_attrs
from explorer.store.schema import SHARD_TRIALS, region_chunk
from explorer.store.signals import SignalStore, resolve_location
from explorer.store.staging import TrialSignals
from explorer.store.urls import SIGNALS_NAME, is_remote, join, open_store
from explorer.store.writers import FileWriter, TrialWriter, ZarrWriter, writer_for

__all__ = ["SignalStore", "TrialSignals", "open_signals", "resolve_signals_url", "best_trials", "region_chunk",
           "SHARD_TRIALS", "SIGNALS_NAME", "is_remote", "join", "open_store", "parse_location", "resolve_location",
           "trial_location", "from_attrs", "simulation_attrs", "to_attrs", "TrialWriter", "FileWriter", "ZarrWriter",
           "writer_for"]
