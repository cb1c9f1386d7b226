#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests marked `slurm` (make test-slurm):
#
#   scripts/local_slurm.sh start [STATE_DIR]   # prints SLURM_CONF=<STATE_DIR>/slurm.conf
#   SLURM_CONF=<STATE_DIR>/slurm.conf sinfo
#   scripts/local_slurm.sh stop [STATE_DIR]
#
# start installs Debian's slurm-wlm and munge when they are missing (as root, with apt-get),
# writes a slurm.conf for this machine (one node with its real CPUs and memory, as `slurmd -C`
# reports them; proctrack/linuxproc and task/none, so no cgroups are needed), starts munged,
# slurmctld and slurmd with everything (config, sockets, state, logs, PID files) under
# STATE_DIR, and waits until sinfo shows the node idle. Nothing outside STATE_DIR is touched
# apart from the packages, so a system-wide Slurm or munge, if any, is left alone; client
# commands reach this cluster through SLURM_CONF. stop cancels the cluster's jobs and stops the
# three daemons by the PIDs start recorded.
set -euo pipefail

ACTION=${1:-}
STATE=$(realpath -m "${2:-${TMPDIR:-/tmp}/seq2seq-slurm}")
CONF=$STATE/slurm.conf
DAEMONS=(munged slurmctld slurmd)

say() { echo "local_slurm: $*" >&2; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null && command -v sbatch >/dev/null; then
        return
    fi
    say "installing slurm-wlm and munge (apt-get)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge
}

write_config() {
    mkdir -p "$STATE"/{munge,ctld,spool}
    chmod 700 "$STATE" "$STATE/munge"
    if [[ ! -s $STATE/munge/munge.key ]]; then
        dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$STATE/munge/munge.key"
    fi
    local node
    node=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=... RealMemory=... as slurmd sees them
    cat >"$CONF" <<EOF
# written by scripts/local_slurm.sh: a one-node cluster on this machine
ClusterName=seq2seq-local
SlurmctldHost=$(hostname -s)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=30
$node State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_daemon() {  # name, then its command line; the daemon runs in the foreground, detached
    local name=$1
    shift
    setsid "$@" </dev/null >>"$STATE/$name.out" 2>&1 &
    echo $! >"$STATE/$name.started"
}

wait_idle() {
    local state=""
    for _ in $(seq 60); do
        state=$(SLURM_CONF=$CONF sinfo -h -N -o %t 2>/dev/null | head -n 1 || true)
        if [[ $state == idle ]]; then
            return
        fi
        sleep 1
    done
    say "the node is not idle after 60 s (state: '${state:-none}'); logs in $STATE"
    tail -n 5 "$STATE"/*.log >&2 || true
    exit 1
}

start() {
    if [[ -e $STATE/slurmctld.started ]]; then
        say "already started in $STATE (scripts/local_slurm.sh stop $STATE first)"
        exit 1
    fi
    install_packages
    write_config
    say "starting munged, slurmctld and slurmd in $STATE"
    start_daemon munged munged --foreground --force --socket="$STATE/munge/munge.socket" \
        --key-file="$STATE/munge/munge.key" --pid-file="$STATE/munge/munged.pid" \
        --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
    for _ in $(seq 20); do [[ -S $STATE/munge/munge.socket ]] && break || sleep 0.5; done
    # -i: ignore state a previous cluster left in StateSaveLocation
    start_daemon slurmctld slurmctld -D -i -f "$CONF"
    start_daemon slurmd slurmd -D -f "$CONF"
    wait_idle
    echo "SLURM_CONF=$CONF"
}

stop() {
    if [[ -e $CONF ]] && [[ -e $STATE/slurmctld.started ]]; then
        local jobs
        jobs=$(SLURM_CONF=$CONF squeue -h -o %i 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            say "cancelling jobs $(echo $jobs)"
            # shellcheck disable=SC2086
            SLURM_CONF=$CONF scancel $jobs || true
            for _ in $(seq 60); do
                [[ -z $(SLURM_CONF=$CONF squeue -h -o %i 2>/dev/null) ]] && break || sleep 1
            done
        fi
    fi
    local name pid
    for name in slurmd slurmctld munged; do  # the reverse order of start
        [[ -e $STATE/$name.started ]] || continue
        pid=$(cat "$STATE/$name.started")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null && sleep 0.5 || break; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$STATE/$name.started"
    done
    say "stopped ${DAEMONS[*]} of $STATE"
}

case $ACTION in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: scripts/local_slurm.sh start|stop [STATE_DIR]" >&2
        exit 2
        ;;
esac
