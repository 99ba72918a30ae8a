# shellcheck shell=bash
# Helpers shared by start_cluster.sh, start_multicluster.sh and stop_cluster.sh.
# Sourced, never executed.  Adapted from the recipes in /work/shared/recipes/slurm
# (tried on Debian 12, Slurm 22.05.8, no systemd); nothing here reads or writes /etc.

# A pid file whose process exists and is not a zombie (in containers PID 1 may
# reap daemons late, and kill -0 succeeds on zombies).
pid_alive() { [ -r "/proc/$1/stat" ] && ! awk '{exit $3!="Z"}' "/proc/$1/stat" 2>/dev/null; }
alive() { [ -s "$1" ] || return 1; pid_alive "$(cat "$1")"; }

log() { echo "[${LOG_TAG:-slurm}] $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$T0" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }
stamp() { [ -z "${VERBOSE:-}" ] || log "$(elapsed)s: $*"; }

# wait_for TENTHS CMD...: retry CMD every 0.1 s, at most TENTHS times.
wait_for() {
  local n=$1 i; shift
  for ((i = 0; i < n; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# free_ports N: N distinct TCP ports free on 127.0.0.1, one a line.  They are
# taken from 20000-32767, below Linux's ephemeral range (32768-60999), so an
# outgoing connection of some client cannot grab one between the check here and
# the daemon's bind().
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n, got = int(sys.argv[1]), []
while len(got) < n:
    p = random.randint(20000, 32767)
    if p in got:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    got.append(p)
print("\n".join(map(str, got)))
EOF
}

# start_munge DIR: an own munged with its socket in DIR/munge (kept short:
# sun_path is limited to 108 bytes).  Sets SOCK.
start_munge() {
  local m=$1/munge
  mkdir -p "$m"; chmod 700 "$m"
  SOCK=$m/munge.sock
  if [ "${#SOCK}" -gt 100 ]; then log "munge socket path too long: $SOCK"; return 1; fi
  [ -s "$m/munge.key" ] || mungekey -c -b 1024 -k "$m/munge.key"
  if ! alive "$m/munged.pid"; then
    rm -f "$SOCK" "$SOCK.lock"
    # -f: munged otherwise refuses a socket dir that is not a+x; it daemonizes itself
    munged -f --key-file="$m/munge.key" --socket="$SOCK" \
      --pid-file="$m/munged.pid" --log-file="$m/munged.log" \
      --seed-file="$m/munged.seed" --num-threads=4
  fi
  wait_for 100 munge_ok || { log "munged not answering; see $m/munged.log"; return 1; }
}
munge_ok() { munge -S "$SOCK" -n </dev/null | unmunge -S "$SOCK"; }

# write_slurm_conf FILE CLUSTER CDIR NODE CTLD_PORT SLURMD_PORT DBD_PORT FIRST_JOB_ID MIN_JOB_AGE
#   DBD_PORT empty: no accounting (jobcomp/filetxt keeps a record of finished jobs).
# DependencyParameters=kill_invalid_depend is deliberately NOT set: the scripts
# under test pass --kill-on-invalid-dep=yes themselves, and the tests prove the
# flag matters.  EXTRA_SLURM_CONF (env) is appended verbatim.
write_slurm_conf() {
  local f=$1 c=$2 d=$3 node=$4 cport=$5 dport=$6 dbd=$7 first=$8 age=$9 p def=YES
  local me; me=$(id -un)
  mkdir -p "$d"/{state,spool/"$node",log}
  {
    cat <<EOF
ClusterName=$c
SlurmctldHost=localhost
SlurmctldPort=$cport
SlurmdPort=$dport
SlurmUser=$me
SlurmdUser=$me
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool/%n
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
FirstJobId=$first
# fast turn-around: no batch delay, main scheduler and backfill every second
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=1,bf_interval=1
MinJobAge=$age
InactiveLimit=0
KillWait=2
SlurmdTimeout=30
JobCompType=jobcomp/filetxt
JobCompLoc=$d/log/jobcomp.txt
EOF
    if [ -n "$dbd" ]; then
      cat <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd
# for the slurmdbd connection the munge socket is taken from AccountingStoragePass
AccountingStoragePass=$SOCK
EOF
    else
      echo "AccountingStorageType=accounting_storage/none"
    fi
    echo "NodeName=$node NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=${SLURM_CPUS:-2} RealMemory=${SLURM_MEM_MB:-1000} State=UNKNOWN"
    for p in ${SLURM_PARTITIONS:-debugq copyq}; do
      echo "PartitionName=$p Nodes=$node Default=$def MaxTime=INFINITE State=UP OverSubscribe=NO"
      def=NO
    done
    [ -z "${EXTRA_SLURM_CONF:-}" ] || printf '%s\n' "$EXTRA_SLURM_CONF"
  } >"$f.tmp"
  mv "$f.tmp" "$f"
}

# start_ctld CONF / start_slurmd CONF NODE: the daemons of one cluster, unless
# alive.  slurmd is best started once slurmctld answers (ctld_ok): its first
# registration then succeeds at once instead of being retried a second later.
start_ctld() {
  # -i: ignore missing/corrupt state files
  alive "$(dirname "$1")/slurmctld.pid" || slurmctld -f "$1" -i
}
start_slurmd() {
  alive "$(dirname "$1")/slurmd.pid" || slurmd -f "$1" -N "$2"
}
# restart_ctld CONF: stop the slurmctld recorded next to CONF (TERM, KILL after
# 10 s; only if /proc/PID/comm says slurmctld) and start it again.
restart_ctld() {
  local conf=$1 d pid i; d=$(dirname "$conf")
  pid=$(cat "$d/slurmctld.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmctld ]; then
    kill -TERM "$pid"
    for ((i = 0; i < 100; i++)); do pid_alive "$pid" || break; sleep 0.1; done
    if pid_alive "$pid"; then
      kill -KILL "$pid"
      for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.1; done
    fi
  fi
  slurmctld -f "$conf" -i
  wait_for 300 ctld_ok "$conf"
}
ctld_ok() { SLURM_CONF=$1 scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_ok() { SLURM_CONF=$1 sinfo -h -n "$2" -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }
# slurmctld's first scheduling pass comes ~2-3 s after start; batch_sched_delay=0
# and friends apply only from then on (a job submitted earlier just starts then).
sched_ran() { [ "$(SLURM_CONF=$1 sdiag 2>/dev/null | awk '/Total cycles:/{print $3; exit}')" -ge 1 ] 2>/dev/null; }

# tail_logs DIR: the end of every daemon log under DIR, for error messages.
tail_logs() {
  local f
  while IFS= read -r f; do
    echo "----- $f" >&2
    tail -n 15 "$f" >&2
  done < <(find "$1" -path '*/mysql/data' -prune -o \( -name '*.log' -o -name '*.err' \) -type f -print 2>/dev/null | sort)
}
fail() { log "$*"; tail_logs "$TOP"; exit 1; }
