#!/usr/bin/env bash
# Installs Debian's SLURM (slurmctld, slurmd, sbatch) and munge if they are missing (CI runs as root on
# a fresh machine). tests/cluster/test_slurm.py starts and stops its own one-machine SLURM cluster.
set -euo pipefail
here="$(dirname "$0")"
"$here/apt_install.sh" slurm-wlm 'command -v slurmctld && command -v slurmd && command -v sbatch' "the SLURM tests"
"$here/apt_install.sh" munge 'command -v munged' "the SLURM tests"
