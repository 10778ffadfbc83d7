"""`python journal_hooks.py MODE ARM_FILE INSIDE_FILE explorer-args...`: the explorer CLI with a slowed journal.

A test hook for the interrupt tests, so that a signal lands *inside* a storage write by design,
not by luck. Once ``ARM_FILE`` exists, the next journal write of the driver:

* ``slow-release``: writes its records, then holds Optuna's journal lock for 2 s before releasing
  it (where a Ctrl-C once raised KeyboardInterrupt inside ``JournalFileSymlinkLock.release``);
* ``torn-append``: takes the lock, writes half of its records (a torn line, no newline) and
  hangs, so that a SIGKILL leaves a stale lock and a torn journal behind.

``INSIDE_FILE`` is created when the write is in progress: the test sends its signal then.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def install(mode: str, arm: Path, inside: Path) -> None:
    from optuna.storages.journal import _file

    original_append = _file.JournalFileBackend.append_logs
    original_release = _file.JournalFileSymlinkLock.release
    state = {"fired": False}

    def armed() -> bool:
        return not state["fired"] and arm.exists()

    def slow_release(self) -> None:
        if armed():
            state["fired"] = True
            inside.touch()
            time.sleep(2.0)
        original_release(self)

    def torn_append(self, logs) -> None:
        if not armed():
            return original_append(self, logs)
        state["fired"] = True
        self._lock.acquire()
        data = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs).encode() + b"\n"
        with open(self._file_path, "ab") as f:
            f.write(data[: max(1, len(data) // 2)])
            f.flush()
            os.fsync(f.fileno())
        inside.touch()
        time.sleep(600)

    if mode == "slow-release":
        _file.JournalFileSymlinkLock.release = slow_release
    elif mode == "torn-append":
        _file.JournalFileBackend.append_logs = torn_append
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    mode, arm, inside, *args = sys.argv[1:]
    install(mode, Path(arm), Path(inside))
    from explorer.cli import main

    sys.exit(main(args))
