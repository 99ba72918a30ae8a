#!/bin/bash
# start_cluster.sh DIR [CLUSTER]   (default cluster name: magnus)
# A throw-away single-node Slurm 22.05 cluster (munged + slurmctld + slurmd)
# entirely inside DIR, on free ports of 127.0.0.1; nothing in /etc is read or
# written.  Partitions debugq (default) and copyq; no accounting database
# (finished jobs stay in `scontrol show job` for MinJobAge=3600 s and are
# also written to DIR/log/jobcomp.txt).
# stdout, and nothing else on it:   export SLURM_CONF=DIR/slurm.conf
#                                   export LTSFLOW_SLURM_CLUSTERS=CLUSTER
# so use   eval "$(start_cluster.sh DIR)".   Stop with stop_cluster.sh DIR.
# Idempotent: daemons already alive (per their pid files) are left alone.
# Env: VERBOSE=1 (timings on stderr), WAIT_SCHED=1 (also wait for the first
#      scheduling pass), SLURM_PARTITIONS, SLURM_CPUS, SLURM_MEM_MB, EXTRA_SLURM_CONF.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/slurm/lib.sh
. "$HERE/lib.sh"
LOG_TAG=start_cluster
T0=$(now)
DIR=${1:?usage: $0 DIR [CLUSTER]}
CLUSTER=${2:-magnus}
NODE=$CLUSTER-n1
mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd); chmod 755 "$DIR"
TOP=$DIR

start_munge "$DIR" || fail "munged failed"
stamp "munge up"
CONF=$DIR/slurm.conf
if [ ! -s "$CONF" ]; then
  mapfile -t P < <(free_ports 2)
  write_slurm_conf "$CONF" "$CLUSTER" "$DIR" "$NODE" "${P[0]}" "${P[1]}" "" 1 3600
fi
start_ctld "$CONF" || fail "slurmctld did not start"
wait_for 300 ctld_ok "$CONF" || fail "slurmctld not answering after 30 s"
stamp "slurmctld answers"
start_slurmd "$CONF" "$NODE" || fail "slurmd did not start"
wait_for 300 node_ok "$CONF" "$NODE" || fail "node $NODE not idle after 30 s"
stamp "node idle"
if [ "${WAIT_SCHED:-0}" = 1 ]; then
  wait_for 100 sched_ran "$CONF" || fail "no scheduling pass after 10 s"
  stamp "first scheduling pass done"
fi
log "cluster $CLUSTER up in $(elapsed) s"
echo "export SLURM_CONF=$CONF"
echo "export LTSFLOW_SLURM_CLUSTERS=$CLUSTER"
