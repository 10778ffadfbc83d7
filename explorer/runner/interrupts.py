"""Deferred interrupts: SIGINT and SIGTERM set a flag, never raise inside library code.

A ``KeyboardInterrupt`` raised at an arbitrary bytecode can cut an Optuna journal append, a lock
release, an MLflow batch or a zarr commit in half. While :class:`Interrupts` is installed, a signal
only records itself; the driver looks at :attr:`Interrupts.requested` between steps (never inside
a storage write) and starts its clean shutdown. A second signal sets :attr:`Interrupts.forced`:
the shutdown then stops at its next safe point, between two storage writes. The same signal again
within ``echo_s`` (1 s) of the first is the same request delivered twice, not a second one: a batch
system that signals both the job's shell and its processes (SLURM's ``scancel --full``, preemption)
makes the shell forward a signal the driver has already received.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: seconds within which the first signal, delivered again, still counts once
ECHO_S = 1.0


class Interrupted(Exception):
    """Raised by :meth:`Interrupts.check` at a safe point after a deferred SIGINT/SIGTERM."""


class Interrupts:
    """``with Interrupts() as stop:`` defers SIGINT/SIGTERM to ``stop.requested`` / ``stop.forced``.

    Outside the main thread signals cannot be handled, and the previous behaviour stays.
    :meth:`install` may be called again to take the signals back from a library that set its own
    handler meanwhile (``ray.init`` installs a SIGTERM handler that calls ``sys.exit``).
    """

    def __init__(self, echo_s: float = ECHO_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.count = 0
        self.signum: int | None = None
        self.echo_s = echo_s
        self.clock = clock
        self._first_at = 0.0
        self._previous: dict[int, Any] = {}

    # -- state ------------------------------------------------------------------------------
    @property
    def requested(self) -> bool:
        """A SIGINT or SIGTERM arrived: stop at the next safe point."""
        return self.count > 0

    @property
    def forced(self) -> bool:
        """A second signal arrived: skip the rest of the clean-up at the next safe point."""
        return self.count > 1

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal arrived (call only between storage writes)."""
        if self.requested:
            raise Interrupted(self.name)

    def _handle(self, signum: int, frame: Any) -> None:  # the signal handler: record, nothing else
        now = self.clock()
        if self.count == 1 and signum == self.signum and now - self._first_at < self.echo_s:
            return                         # the first signal again, forwarded by a batch shell
        self.count += 1
        if self.signum is None:
            self.signum, self._first_at = signum, now

    # -- installation -----------------------------------------------------------------------
    def install(self) -> "Interrupts":
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in SIGNALS:
            previous = signal.signal(sig, self._handle)
            self._previous.setdefault(sig, previous)
        return self

    def restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def __enter__(self) -> "Interrupts":
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()
