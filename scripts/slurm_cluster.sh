#!/usr/bin/env bash
# A single-node SLURM cluster on localhost for tests and demos, with no systemd:
# munged, slurmctld and slurmd are started by hand and stopped by their pids only.
#
#   scripts/slurm_cluster.sh start    # prints the SLURM_CONF=... line to export
#   scripts/slurm_cluster.sh status
#   scripts/slurm_cluster.sh stop     # cancels our jobs, stops our three daemons
#
# Everything lives under build/slurm/ (config, spool, state, logs, munge socket and key), so
# nothing in /etc is changed and nothing else on the machine is touched. Clients need
# SLURM_CONF=build/slurm/slurm.conf (the tests' fixture sets it). Needs root and Debian's
# slurm-wlm, slurm-wlm-torque and munge (scripts/apt-packages.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE="${SLURM_CLUSTER_DIR:-$(pwd)/build/slurm}"
CONF="$BASE/slurm.conf"
MUNGE_DIR="$BASE/munge"
PARTITION="${SLURM_PARTITION:-debug}"
CTLD_PORT="${SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${SLURM_SLURMD_PORT:-6818}"
say() { printf '[slurm-cluster] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {  # stop_pidfile NAME PIDFILE: TERM, wait up to 10 s, then KILL
    local name=$1 pidfile=$2 pid
    alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then say "$name ($pid) ignored TERM: KILL"; kill -KILL "$pid" || true; fi
    rm -f "$pidfile"
    say "stopped $name ($pid)"
}

write_config() {
    local hw cpus mem host
    host=$(hostname -s)
    hw=$(slurmd -C | head -1)
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    # Declare at least SLURM_CLUSTER_CPUS (default 8) CPUs even on a 2-core machine
    # (config_overrides): the four stage classes' blocks can then be alive at once, as they
    # would be on several nodes of a real cluster, instead of queueing behind an idle block.
    local want=${SLURM_CLUSTER_CPUS:-8}
    (( cpus < want )) && cpus=$want
    cat > "$CONF" <<CONF
# Written by scripts/slurm_cluster.sh: a minimal single-node cluster on 127.0.0.1.
ClusterName=pyacemaker
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_DIR/munge.socket
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/slurmctld.pid
SlurmdPidFile=$BASE/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
# Finished jobs stay visible to squeue for 300 s (SLURM's default): with no accounting
# storage, Parsl reads a job's end (CANCELLED, TIMEOUT) from squeue. Cancelled steps die fast.
MinJobAge=300
KillWait=2
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
    alive "$MUNGE_DIR/munged.pid" && return 0
    mkdir -p "$MUNGE_DIR"
    chown munge:munge "$MUNGE_DIR"; chmod 700 "$MUNGE_DIR"
    if [[ ! -f "$MUNGE_DIR/munge.key" ]]; then
        dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
        chown munge:munge "$MUNGE_DIR/munge.key"; chmod 400 "$MUNGE_DIR/munge.key"
    fi
    runuser -u munge -- /usr/sbin/munged --force \
        --socket="$MUNGE_DIR/munge.socket" --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" \
        || die "munged did not start; see $MUNGE_DIR/munged.log"
}

wait_node_idle() {
    for _ in $(seq 150); do
        local state
        state=$(SLURM_CONF="$CONF" sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
        [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* ]] && return 0
        sleep 0.2
    done
    die "node not idle after 30 s; logs in $BASE/log/"
}

start() {
    [[ $(id -u) -eq 0 ]] || die "needs root (daemons run as root/munge)"
    for cmd in slurmctld slurmd munged sinfo; do
        command -v "$cmd" >/dev/null || die "$cmd not found: apt-get install slurm-wlm munge"
    done
    mkdir -p "$BASE"/{state,spool,log}
    if alive "$BASE/slurmctld.pid" && alive "$BASE/slurmd.pid"; then
        say "already running ($CONF)"
    else
        write_config
        start_munge
        alive "$BASE/slurmctld.pid" || SLURM_CONF="$CONF" slurmctld -c -f "$CONF" \
            || die "slurmctld did not start; see $BASE/log/slurmctld.log"
        alive "$BASE/slurmd.pid" || SLURM_CONF="$CONF" slurmd -f "$CONF" \
            || die "slurmd did not start; see $BASE/log/slurmd.log"
    fi
    wait_node_idle
    say "up: partition $PARTITION on $(hostname -s)"
    echo "SLURM_CONF=$CONF"
}

stop() {
    if alive "$BASE/slurmctld.pid"; then
        SLURM_CONF="$CONF" scancel --full --partition="$PARTITION" 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -z "$(SLURM_CONF="$CONF" squeue -h 2>/dev/null)" ]] && break; sleep 0.2
        done
    fi
    stop_pidfile slurmd "$BASE/slurmd.pid"
    stop_pidfile slurmctld "$BASE/slurmctld.pid"
    stop_pidfile munged "$MUNGE_DIR/munged.pid"
}

status() {
    local rc=0
    for d in slurmctld:"$BASE/slurmctld.pid" slurmd:"$BASE/slurmd.pid" munged:"$MUNGE_DIR/munged.pid"; do
        if alive "${d#*:}"; then echo "${d%%:*} running (pid $(cat "${d#*:}"))"
        else echo "${d%%:*} stopped"; rc=1; fi
    done
    return $rc
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
