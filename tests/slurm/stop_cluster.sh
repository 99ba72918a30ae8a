#!/bin/bash
# stop_cluster.sh DIR  -- stop what start_cluster.sh / start_multicluster.sh started in DIR.
# 1. cancel this setup's jobs (so their slurmstepd exit cleanly), briefly;
# 2. TERM the PIDs recorded in DIR's pid files, only if /proc/PID/comm is the
#    expected daemon (guards against recycled PIDs); KILL after 10 s.
#    Order: slurmd, slurmctld (all clusters in parallel), slurmdbd, mariadbd, munged;
# 3. KILL job steps left behind: slurmstepd processes holding a file under DIR
#    open (slurmd's log) and the process groups of job scripts in DIR's spool.
# Exit status 0 when nothing recorded in DIR is left alive, 1 otherwise.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/slurm/lib.sh
. "$HERE/lib.sh"
LOG_TAG=stop_cluster
T0=$(now)
DIR=${1:?usage: $0 DIR}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)
shopt -s nullglob

stop_pid() {  # pidfile expected-comm
  local f=$1 want=$2 pid i
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$want" ]; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 200; i++)); do pid_alive "$pid" || break; sleep 0.05; done
    if pid_alive "$pid"; then
      log "$want ($pid) ignored TERM for 10 s: KILL"
      kill -KILL "$pid" 2>/dev/null
      for ((i = 0; i < 40; i++)); do pid_alive "$pid" || break; sleep 0.05; done
    fi
    if pid_alive "$pid"; then log "$want ($pid) survived KILL"; return 1; fi
  fi
  rm -f "$f"
}
status=0
stop_all() {  # expected-comm pidfile...   (in parallel)
  local want=$1 f j jobs=(); shift
  for f in "$@"; do stop_pid "$f" "$want" & jobs+=($!); done
  for j in "${jobs[@]}"; do wait "$j" || status=1; done
}

# 1. cancel jobs while the controllers still run (no waiting on a dead controller)
confs=("$DIR"/slurm.conf "$DIR"/*/slurm.conf)
for c in "${confs[@]}"; do
  d=$(dirname "$c")
  alive "$d/slurmctld.pid" || continue
  timeout 3 env SLURM_CONF="$c" scancel --user="$(id -un)" >/dev/null 2>&1 || true
done
deadline=$((SECONDS + 4))
for c in "${confs[@]}"; do
  d=$(dirname "$c")
  alive "$d/slurmctld.pid" || continue
  while [ $SECONDS -lt $deadline ] &&
        [ -n "$(timeout 2 env SLURM_CONF="$c" squeue -h -t R,CG -o %i 2>/dev/null)" ]; do
    sleep 0.1
  done
done
stamp "jobs cancelled"

# 2. daemons
stop_all slurmd "$DIR"/slurmd.pid "$DIR"/*/slurmd.pid
stamp "slurmd stopped"
stop_all slurmctld "$DIR"/slurmctld.pid "$DIR"/*/slurmctld.pid
stamp "slurmctld stopped"
stop_all slurmdbd "$DIR"/slurmdbd.pid "$DIR"/*/slurmdbd.pid
stamp "slurmdbd stopped"
stop_all mariadbd "$DIR"/mysql/mysqld.pid
stamp "mariadbd stopped"
stop_all munged "$DIR"/munge/munged.pid
stamp "munged stopped"

# 3. job steps and job scripts this setup's slurmd left behind (normally none:
#    step 1 cancelled them); a job script leads its own process group: kill that
left=()
script_re="^[^ ]*sh ${DIR//./\\.}/(.*/)?spool/.*/slurm_script "
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  comm=; read -r comm 2>/dev/null <"$p/comm" || continue
  if [ "$comm" = slurmstepd ]; then
    find "$p/fd" -mindepth 1 -lname "$DIR/*" 2>/dev/null | grep -q . && left+=("$pid")
  elif [ "$comm" = slurm_script ] || [ "$comm" = bash ] || [ "$comm" = sh ]; then
    tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qE "$script_re" || continue
    read -r -a st 2>/dev/null <"$p/stat" || continue
    if [ "${st[4]}" = "$pid" ]; then left+=("-$pid"); else left+=("$pid"); fi
  fi
done
if [ ${#left[@]} -gt 0 ]; then
  log "killing left-over job process(es): ${left[*]}"
  kill -KILL -- "${left[@]}" 2>/dev/null
fi
log "stopped $DIR in $(elapsed) s"
exit $status
