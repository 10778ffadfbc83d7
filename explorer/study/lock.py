"""An exclusive lock file per study folder, so that two drivers never run one study at once."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import time
from pathlib import Path

from explorer.errors import StudyError
from explorer.study.layout import LOCK_FILE


class StudyLock:
    """``with StudyLock(study_dir): ...`` holds ``<study>/.driver.lock`` (fcntl.flock, non-blocking).

    The kernel releases the lock when the process dies (even by SIGKILL), so a dead driver never
    leaves a stale lock. A second driver gets a StudyError naming the holder.
    """

    def __init__(self, study_dir: str | Path, name: str | None = None):
        self.path = Path(study_dir) / LOCK_FILE
        self.name = name or Path(study_dir).name
        self._fd: int | None = None

    def acquire(self) -> "StudyLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                holder = {}
            os.close(fd)
            who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}"
            raise StudyError(f"study {self.name!r} is already being run by another driver ({who}). "
                             "Wait for it to finish (`explorer status "
                             f"{self.name}`) or stop it; two drivers would overshoot the trial budget.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": platform.node(),
                                  "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "StudyLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
