"""The study folder's lock file: drivers share it, ``explorer verify --repair`` takes it alone.

Which *subjects* a driver runs is decided by the per-subject leases in the Optuna storage
(:mod:`explorer.search.leases`), which work across hosts. This host-local lock only keeps apart
what must not overlap on one machine: a repair and a running driver, and the journal's crash
recovery (safe only while no other driver of this host is writing).
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from explorer.errors import StudyError
from explorer.layout import LOCK_FILE, SETUP_LOCK_FILE


class StudyLock:
    """``with StudyLock(study_dir, shared=...): ...`` holds ``<study>/.driver.lock`` (fcntl.flock, non-blocking).

    ``shared=True`` (a driver): any number of drivers hold it together; ``alone`` says whether this
    one found no other (it held the lock exclusively first, so a journal left by a killed driver can
    be repaired). ``shared=False`` (``verify --repair``): nobody else may hold it. The kernel releases
    the lock when the process dies (even by SIGKILL), so a dead driver never leaves a stale lock.
    When the lock is taken, a StudyError names the holder.
    """

    def __init__(self, study_dir: str | Path, name: str | None = None, shared: bool = False, role: str = "driver"):
        self.path = Path(study_dir) / LOCK_FILE
        self.name = name or Path(study_dir).name
        self.shared = shared
        self.role = role
        self.alone = False
        self._fd: int | None = None

    def acquire(self) -> "StudyLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.alone = True
        except BlockingIOError:
            if not self.shared:
                self._refuse(fd)
        if self.alone:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": platform.node(), "role": self.role,
                                      "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode(), 0)
        if self.shared:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                self._refuse(fd)
        self._fd = fd
        return self

    def _refuse(self, fd: int) -> None:
        try:
            holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            holder = {}
        os.close(fd)
        who = (f"{holder.get('role', 'driver')} pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
               f"since {holder.get('since', '?')}")
        if self.shared:
            raise StudyError(f"study {self.name!r} is held by another process ({who}): `explorer verify "
                             f"{self.name} --repair` runs alone. Wait for it to finish, then run again.")
        raise StudyError(f"study {self.name!r} is already being run by another driver ({who}). Wait for it "
                         f"to finish (`explorer status {self.name}`) or stop it; a repair must not run beside a "
                         "driver.")

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "StudyLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def setup_lock(study_dir: str | Path) -> Iterator[None]:
    """Held (blocking, exclusive) while a driver of this host opens the study's databases: two drivers
    creating the embedded SQLite stores at the same moment would race in their schema migrations."""
    path = Path(study_dir) / SETUP_LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
