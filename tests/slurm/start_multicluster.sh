#!/bin/bash
# start_multicluster.sh DIR federated|plain [CLUSTER...]   (default clusters: zeus magnus)
# Throw-away multi-cluster Slurm 22.05 inside DIR, on free ports of 127.0.0.1,
# no systemd, nothing in /etc: one munged, one MariaDB, one slurmdbd, and per
# cluster one slurmctld + one slurmd (node "<cluster>-n1"), partitions debugq
# (default) and copyq.  All clusters are registered in slurmdbd, so
# `sbatch -M zeus` and `sacct -M all` work.
#   federated: the clusters also form federation "fed1" (cross-cluster
#              --dependency works; job ids become 67108864*k + local id)
#   plain:     no federation (a cross-cluster afterok:N is NOT waited for)
# Local job ids start at 10000 for the first cluster, 20000 for the second...,
# so ids never coincide between clusters.
# stdout, nothing else:  export SLURM_CONF=DIR/<first>/slurm.conf
#                        export SLURM_CONF_<cluster>=DIR/<cluster>/slurm.conf  (each)
#                        export LTSFLOW_SLURM_CLUSTERS="<cluster> ..."
# Idempotent: daemons already alive (per recorded pid files) are left alone.
# Stop with stop_cluster.sh DIR.   Env: VERBOSE=1, WAIT_SCHED=1, as start_cluster.sh.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/slurm/lib.sh
. "$HERE/lib.sh"
LOG_TAG=start_multicluster
T0=$(now)
DIR=${1:?usage: $0 DIR federated|plain [CLUSTER...]}
MODE=${2:?usage: $0 DIR federated|plain [CLUSTER...]}
shift 2
case "$MODE" in
  federated) FEDERATION=fed1 ;;
  plain) FEDERATION= ;;
  *) echo "mode must be federated or plain, not '$MODE'" >&2; exit 2 ;;
esac
CLUSTERS=("$@"); [ ${#CLUSTERS[@]} -gt 0 ] || CLUSTERS=(zeus magnus)
mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd); chmod 755 "$DIR"
TOP=$DIR
ME=$(id -un)
mkdir -p "$DIR"/{mysql,dbd,log}

# ------------------------------------------------------------------ ports
if [ ! -s "$DIR/ports" ]; then
  free_ports $((2 + 2 * ${#CLUSTERS[@]})) >"$DIR/ports.tmp"
  mv "$DIR/ports.tmp" "$DIR/ports"
fi
mapfile -t PORTS <"$DIR/ports"
MPORT=${PORTS[0]} DBDPORT=${PORTS[1]}

# ------------------------------------------------------------------ mariadb (first: slowest)
M=$DIR/mysql
if ! alive "$M/mysqld.pid"; then
  if [ ! -d "$M/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$M/data" --user="$ME" \
      --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
      >"$M/install.log" 2>&1 || fail "mariadb-install-db failed: $M/install.log"
  fi
  # mariadbd does not daemonize: detach it (setsid) and rely on its pid file
  setsid mariadbd --no-defaults --datadir="$M/data" --socket="$M/mysqld.sock" \
    --port="$MPORT" --bind-address=127.0.0.1 --pid-file="$M/mysqld.pid" \
    --log-error="$M/mysqld.err" --user="$ME" --skip-name-resolve --skip-log-bin \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
    --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
    --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
fi
stamp "mariadbd started"
start_munge "$DIR" || fail "munged failed"
stamp "munge up"

# ------------------------------------------------------------------ config files
for i in "${!CLUSTERS[@]}"; do
  c=${CLUSTERS[$i]}
  [ -s "$DIR/$c/slurm.conf" ] && continue
  write_slurm_conf "$DIR/$c/slurm.conf" "$c" "$DIR/$c" "$c-n1" \
    "${PORTS[$((2 + 2 * i))]}" "${PORTS[$((3 + 2 * i))]}" "$DBDPORT" $((10000 * (i + 1))) 10
done
if [ ! -s "$DIR/dbd/slurmdbd.conf" ]; then
  cat >"$DIR/dbd/slurmdbd.conf.tmp" <<EOF
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=localhost
DbdPort=$DBDPORT
SlurmUser=$ME
PidFile=$DIR/dbd/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MPORT
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/dbd/slurmdbd.conf.tmp"       # slurmdbd refuses a world-readable conf
  mv "$DIR/dbd/slurmdbd.conf.tmp" "$DIR/dbd/slurmdbd.conf"
fi
export SLURM_CONF=$DIR/${CLUSTERS[0]}/slurm.conf

SQL() { mariadb --no-defaults -S "$M/mysqld.sock" -uroot -e "$1"; }
wait_for 300 SQL 'select 1' || fail "mariadbd not up after 30 s"
wait_for 50 test -s "$M/mysqld.pid" || fail "mariadbd wrote no pid file"
stamp "mariadb up"
SQL "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"

# ------------------------------------------------------------------ slurmdbd
if ! alive "$DIR/dbd/slurmdbd.pid"; then
  # slurmdbd reads slurmdbd.conf from dirname($SLURM_CONF); that slurm.conf need not exist
  SLURM_CONF=$DIR/dbd/slurm.conf slurmdbd || fail "slurmdbd did not start"
fi
wait_for 200 sacctmgr -n list cluster || fail "slurmdbd not answering after 20 s"
stamp "slurmdbd up"

# ------------------------------------------------------------------ controllers + nodes
for c in "${CLUSTERS[@]}"; do start_ctld "$DIR/$c/slurm.conf" || fail "cluster $c: slurmctld did not start"; done
fed_ok() {  # every sibling of cluster $1 synced
  local out; out=$(SLURM_CONF=$DIR/$1/slurm.conf scontrol show federation) || return 1
  [ "$(grep -c 'Sibling:' <<<"$out")" -eq $((${#CLUSTERS[@]} - 1)) ] && ! grep 'Sibling:' <<<"$out" | grep -qv 'Synced:Yes'
}
reg_ok() {  # every cluster known to slurmdbd with its controller's port
  local out c; out=$(sacctmgr -n -P list cluster format=cluster,controlport) || return 1
  for c in "${CLUSTERS[@]}"; do grep -qE "^$c\|[1-9]" <<<"$out" || return 1; done
}
# slurmctld adds its own cluster to slurmdbd when it registers (no `sacctmgr add
# cluster` needed; done by hand it races with that and fails "already exists")
wait_for 300 reg_ok || fail "controllers did not register with slurmdbd in 30 s"
stamp "controllers registered with slurmdbd"
for c in "${CLUSTERS[@]}"; do
  wait_for 300 ctld_ok "$DIR/$c/slurm.conf" || fail "cluster $c: slurmctld not answering after 30 s"
  stamp "$c slurmctld answers"
  start_slurmd "$DIR/$c/slurm.conf" "$c-n1" || fail "cluster $c: slurmd did not start"
done
if [ -n "$FEDERATION" ]; then
  # The federation is added only now that every controller is known to
  # slurmdbd AND answers RPCs (scontrol ping): slurmdbd pushes the new
  # federation to all of them once, without retry, and they connect to each
  # other at once.  (Added before the controllers start, the first one fails to
  # reach the later ones and retries only seconds later; added while one is
  # registered but not yet listening, that one never learns of it.)
  if ! sacctmgr -n -P show federation format=federation | grep -qx "$FEDERATION"; then
    sacctmgr -i add federation "$FEDERATION" clusters="$(IFS=,; echo "${CLUSTERS[*]}")" >/dev/null
    stamp "federation $FEDERATION added"
  fi
  all_fed_ok() { local c; for c in "${CLUSTERS[@]}"; do fed_ok "$c" || return 1; done; }
  if ! wait_for 100 all_fed_ok; then
    # Not seen in 30 runs here; a safety net.  A controller that missed
    # slurmdbd's push loads the federation when it starts, and connects then:
    # restart those that do not know it (all of them if each knows it).
    bad=()
    for c in "${CLUSTERS[@]}"; do
      SLURM_CONF=$DIR/$c/slurm.conf scontrol show federation 2>/dev/null | grep -q "^Federation: $FEDERATION" || bad+=("$c")
    done
    [ ${#bad[@]} -gt 0 ] || bad=("${CLUSTERS[@]}")
    log "federation not synced after 10 s: restarting slurmctld of ${bad[*]}"
    for c in "${bad[@]}"; do restart_ctld "$DIR/$c/slurm.conf" || fail "cluster $c: slurmctld did not come back"; done
    wait_for 200 all_fed_ok || fail "federation $FEDERATION not synced after 30 s"
  fi
  stamp "federation synced"
fi
for c in "${CLUSTERS[@]}"; do
  wait_for 300 node_ok "$DIR/$c/slurm.conf" "$c-n1" || fail "cluster $c: node not idle after 30 s"
  stamp "$c node idle"
done
if [ "${WAIT_SCHED:-0}" = 1 ]; then
  for c in "${CLUSTERS[@]}"; do
    wait_for 100 sched_ran "$DIR/$c/slurm.conf" || fail "cluster $c: no scheduling pass after 10 s"
  done
  stamp "first scheduling passes done"
fi
log "clusters ${CLUSTERS[*]} ($MODE) up in $(elapsed) s"
echo "export SLURM_CONF=$SLURM_CONF"
for c in "${CLUSTERS[@]}"; do echo "export SLURM_CONF_$c=$DIR/$c/slurm.conf"; done
echo "export LTSFLOW_SLURM_CLUSTERS=\"${CLUSTERS[*]}\""
