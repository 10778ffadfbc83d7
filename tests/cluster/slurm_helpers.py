"""A SLURM cluster on this machine for tests/cluster/test_slurm.py: munged, slurmctld and one slurmd
per "node", all as root, with their configuration, state, sockets and logs in one temporary folder.

Debian's slurmd runs several instances on one host (each ``slurmd -N NAME`` with its own ``Port=``),
so the cluster has two nodes of 1 CPU each (this machine has 2 cores): a 2-node job gets a Ray head
and a Ray worker, a 2-task job array gets one node per driver. Nothing outside the folder is used:
commands find the cluster through ``SLURM_CONF``, the daemons talk through munged's own socket.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from cluster_helpers import free_port, kill_leftovers, stop_group

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scancel", "scontrol")


def missing_prerequisite() -> str | None:
    """Why the SLURM tests cannot run here (None when they can)."""
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if missing:
        return f"{', '.join(missing)} not installed: run cluster/install_slurm.sh (as root)"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs; run the SLURM tests as root (CI does)"
    return None


def _exe(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class SlurmCluster:
    """``nodes`` SLURM nodes (``n1`` ...) of ``cpus`` CPUs each on this host; :meth:`close` stops everything."""

    def __init__(self, nodes: int = 2, cpus: int = 1) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="exslurm", dir="/tmp"))
        self.names = [f"n{i + 1}" for i in range(nodes)]
        self.cpus = cpus
        self.conf = self.dir / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.procs: list[subprocess.Popen] = []
        self._logs: list = []

    # -- start / stop -----------------------------------------------------------------------
    def _write_conf(self) -> None:
        d, host = self.dir, socket.gethostname()
        for sub in ("state", "munge", "log", *(f"spool/{n}" for n in self.names)):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "munge").chmod(0o755)            # munged wants its socket's folder searchable by all
        key = d / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        nodes = "\n".join(f"NodeName={n} NodeHostname={host} NodeAddr=127.0.0.1 Port={free_port()} "
                          f"CPUs={self.cpus} RealMemory=1000 State=UNKNOWN" for n in self.names)
        self.conf.write_text(f"""\
ClusterName=explorertest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge/socket
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool/%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.%n.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
InactiveLimit=0
KillWait=10
MinJobAge=600
{nodes}
PartitionName=debug Nodes={",".join(self.names)} Default=YES MaxTime=INFINITE State=UP
""")

    def _spawn(self, args: list[str], log: str) -> None:
        self._logs.append(open(self.dir / "log" / log, "w"))
        self.procs.append(subprocess.Popen(args, env=self.env, stdout=self._logs[-1], stderr=subprocess.STDOUT,
                                           start_new_session=True))

    def start(self, timeout_s: float = 60.0) -> "SlurmCluster":
        self._write_conf()
        d = self.dir / "munge"
        self._spawn([_exe("munged"), "-F", "-f", f"--socket={d}/socket", f"--key-file={d}/munge.key",
                     f"--pid-file={d}/pid", f"--seed-file={d}/seed", f"--log-file={self.dir}/log/munged.log"],
                    "munged.out")
        self._wait(lambda: (d / "socket").exists(), timeout_s, "munged's socket")
        self._spawn([_exe("slurmctld"), "-D", "-i", "-f", str(self.conf)], "slurmctld.out")
        self._wait(lambda: self._run(["scontrol", "ping"]).stdout.count("UP") > 0, timeout_s, "slurmctld")
        for name in self.names:
            self._spawn([_exe("slurmd"), "-D", "-N", name, "-f", str(self.conf)], f"slurmd.{name}.out")
        self._wait(lambda: self.idle_nodes() == len(self.names), timeout_s, f"{len(self.names)} idle nodes")
        return self

    def close(self) -> None:
        """Cancel every job (its steps and processes end), then stop the daemons, newest first."""
        if self.conf.exists():
            self._run(["scancel", "--full", "--signal=KILL", "--partition=debug"])
            self._wait(lambda: not self.jobs(), 60.0, "the jobs to end", fail=False)
        for proc in reversed(self.procs):
            stop_group(proc)
        for f in self._logs:
            f.close()
        kill_leftovers(str(self.dir))
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- commands ---------------------------------------------------------------------------
    def _run(self, args: list[str], env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
        out = subprocess.run([_exe(args[0]), *args[1:]], env=env or self.env, capture_output=True, text=True,
                             timeout=60)
        if check and out.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed ({out.returncode}): {out.stderr}{out.stdout}")
        return out

    def _wait(self, ready, timeout_s: float, what: str, fail: bool = True) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return True
            for proc in self.procs:
                if proc.poll() is not None and fail:
                    pytest.fail(f"{proc.args[0]} exited ({proc.returncode}) while waiting for {what}:\n{self.logs()}")
            time.sleep(0.2)
        if fail:
            pytest.fail(f"no {what} within {timeout_s:g} s:\n{self.logs()}")
        return False

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in sorted((self.dir / "log").glob("*"))
                         if p.is_file())

    def idle_nodes(self) -> int:
        out = self._run(["sinfo", "-h", "-N", "-o", "%N %t"]).stdout.split("\n")
        return sum(1 for line in out if line.strip().endswith("idle"))

    def jobs(self) -> list[str]:
        """The ids of the jobs not finished yet (array tasks as ``J_I``)."""
        return self._run(["squeue", "-h", "-o", "%i"]).stdout.split()

    def sbatch(self, args: list[str], env: dict, cwd: Path) -> str:
        """``sbatch --parsable ARGS`` from ``cwd`` with ``env`` (plus SLURM_CONF); returns the job id."""
        out = self._run(["sbatch", "--parsable", *args], env={**env, "SLURM_CONF": str(self.conf)}, check=True)
        return out.stdout.strip().split(";")[0]

    def scancel(self, *args: str) -> None:
        self._run(["scancel", *args], check=True)

    def job_states(self, job: str) -> dict[str, tuple[str, str]]:
        """{job id: (state, exit code)} of job ``job`` (every task of an array)."""
        out = self._run(["scontrol", "-o", "show", "job", job]).stdout
        states = {}
        for line in out.splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            key = fields["JobId"] + (f"_{fields['ArrayTaskId']}" if "ArrayTaskId" in fields else "")
            states[key] = (fields.get("JobState", "?"), fields.get("ExitCode", "?"))
        return states

    def wait_job(self, job: str, timeout_s: float) -> dict[str, tuple[str, str]]:
        """Wait until every task of ``job`` has ended; returns :meth:`job_states`."""
        ended = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY")
        self._wait(lambda: all(s in ended for s, _ in self.job_states(job).values()), timeout_s,
                   f"end of job {job}")
        return self.job_states(job)
