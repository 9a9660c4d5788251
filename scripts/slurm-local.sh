#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for trying the SLURM path and for CI.
#
#   scripts/slurm-local.sh up       install slurm-wlm + munge if missing, start munged, slurmctld, slurmd
#   scripts/slurm-local.sh up --if-possible   the same, but without root or sudo just say so (make test)
#   scripts/slurm-local.sh down     stop the three daemons (by their pid files)
#   scripts/slurm-local.sh status   say whether the cluster answers
#
# Everything the cluster writes (state, spool, logs, pid files, slurm.conf) lives in
# $SLURM_LOCAL_DIR (default /var/tmp/jepa-bench-slurm). The config is also installed as
# /etc/slurm/slurm.conf so sbatch/squeue find it without SLURM_CONF, unless that file
# exists and was not written by this script (then a real cluster owns this machine: we stop).
# Needs root, or sudo. Debian 12's slurm-wlm 22.05 and munge 0.5 were used to write it.
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/var/tmp/jepa-bench-slurm}"
CONF="$DIR/slurm.conf"
SYSTEM_CONF=/etc/slurm/slurm.conf
MARK="# written by jepa-bench scripts/slurm-local.sh"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

say() { echo "slurm-local: $*"; }
die() { echo "slurm-local: error: $*" >&2; exit 1; }

answers() {  # (not `sinfo | grep -q`: grep's early exit would fail the pipe under pipefail)
    local states
    states="$(timeout 5 sinfo -h -o "%T" 2>/dev/null)" || return 1
    [[ "$states" =~ idle|mix|alloc ]]
}

install_packages() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
        say "installing slurm-wlm and munge"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq slurm-wlm munge >/dev/null
    fi
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
    if [ ! -s /etc/munge/munge.key ]; then $SUDO mungekey -c -k /etc/munge/munge.key; fi
    $SUDO mkdir -p /run/munge /var/log/munge /var/lib/munge
    $SUDO chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
    $SUDO chmod 0400 /etc/munge/munge.key
    $SUDO runuser -u munge -- /usr/sbin/munged
    $SUDO mkdir -p "$DIR" && $SUDO touch "$DIR/munged.ours"  # `down` stops only a munged this script started
    for _ in $(seq 20); do
        if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
        sleep 0.5
    done
    die "munged started but 'munge -n | unmunge' does not succeed"
}

write_conf() {
    local host cpus mem_mb
    host="$(hostname -s)"
    cpus="$(nproc)"
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
    $SUDO mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    $SUDO tee "$CONF" >/dev/null <<EOF
$MARK
ClusterName=local
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
JobRequeue=1
KillWait=5
MinJobAge=600
MaxArraySize=10001
MaxJobCount=50000
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=$(( mem_mb / cpus ))
EOF
    if [ -e "$SYSTEM_CONF" ] && ! grep -qF "$MARK" "$SYSTEM_CONF"; then
        die "$SYSTEM_CONF exists and was not written by this script: this machine has a SLURM of its own"
    fi
    $SUDO mkdir -p "$(dirname "$SYSTEM_CONF")"
    $SUDO cp "$CONF" "$SYSTEM_CONF"
}

alive() { [ -s "$1" ] && $SUDO kill -0 "$(cat "$1")" 2>/dev/null; }

up() {
    if answers; then
        if grep -qsF "$MARK" "${SLURM_CONF:-$SYSTEM_CONF}"; then
            say "cluster already up ($(sinfo -h -o '%n %T %c CPUs'))"
        else
            say "a SLURM cluster of this machine's own answers; leaving it alone (the slurm tests skip)"
        fi
        return
    fi
    install_packages
    start_munge
    write_conf
    export SLURM_CONF="$CONF"
    alive "$DIR/slurmctld.pid" || $SUDO env SLURM_CONF="$CONF" slurmctld -f "$CONF"
    alive "$DIR/slurmd.pid" || $SUDO env SLURM_CONF="$CONF" slurmd -f "$CONF"
    for _ in $(seq 60); do
        if answers; then say "cluster up: $(sinfo -h -o '%P %n %T %c CPUs %m MB')"; return; fi
        sleep 0.5
    done
    # a node left DOWN by an earlier unclean stop comes back with an explicit resume
    $SUDO scontrol update NodeName="$(hostname -s)" State=RESUME 2>/dev/null || true
    sleep 2
    answers || die "the daemons started but sinfo shows no idle node; see $DIR/log/"
    say "cluster up: $(sinfo -h -o '%P %n %T %c CPUs %m MB')"
}

down() {
    for daemon in slurmd slurmctld; do
        if alive "$DIR/$daemon.pid"; then $SUDO kill "$(cat "$DIR/$daemon.pid")"; say "stopped $daemon"; fi
    done
    if [ -e "$DIR/munged.ours" ] && alive /run/munge/munged.pid; then
        $SUDO kill "$(cat /run/munge/munged.pid)" && $SUDO rm -f "$DIR/munged.ours"
        say "stopped munged"
    fi
}

can_admin() { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }

case "${1:-}" in
    up)
        if [ "${2:-}" = "--if-possible" ] && ! can_admin; then
            say "neither root nor passwordless sudo: no local cluster (the slurm tests skip)"
            exit 0
        fi
        up ;;
    down) down ;;
    status) if answers; then sinfo; else say "no cluster answers"; exit 1; fi ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
