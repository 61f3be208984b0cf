#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for tests of the SLURM profile.
#
#   tests/slurm/cluster.sh start STATE_DIR   # install (apt) if needed, start munged, slurmctld, slurmd
#   tests/slurm/cluster.sh stop  STATE_DIR   # kill the daemons this script started (PIDs in STATE_DIR)
#   tests/slurm/cluster.sh status STATE_DIR  # sinfo + squeue
#
# Exit codes: 0 ok, 1 failure (daemon logs are printed), 3 cannot run here (not root, or no apt to install with).
#
# The configuration (slurm.conf, gres.conf) is written to STATE_DIR and copied to /etc/slurm, so that plain
# `sinfo`/`sbatch`/`srun` work in any shell; STATE_DIR/env.sh exports SLURM_CONF as well.
# One node named after `hostname -s`, with the CPUs and memory `slurmd -C` reports, two fake GPUs
# (gres.conf: File=/dev/null and File=/dev/zero), partition `debug` (Default). No slurmdbd: MinJobAge=3600 keeps finished jobs
# visible to `squeue` for an hour, which is what the Snakemake SLURM executor's squeue status command needs.
# Environment: SLURM_TEST_CTLD_PORT (6817), SLURM_TEST_SLURMD_PORT (6818), SLURM_TEST_START_TIMEOUT (60 s).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

CMD="${1:-}"
STATE_DIR="${2:-}"
if [[ -z "$CMD" || -z "$STATE_DIR" ]]; then
    echo "usage: $0 start|stop|status STATE_DIR" >&2
    exit 2
fi
mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd)"
CTLD_PORT="${SLURM_TEST_CTLD_PORT:-6817}"
SLURMD_PORT="${SLURM_TEST_SLURMD_PORT:-6818}"
START_TIMEOUT="${SLURM_TEST_START_TIMEOUT:-60}"
export SLURM_CONF="$STATE_DIR/slurm.conf"
NODE="$(hostname -s)"
LAST_FILE=/run/maple-test-slurm/last-state-dir

log() { echo "[slurm-cluster] $*" >&2; }

pid_alive() {  # pidfile
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

do_stop() {
    # Cancel what is still queued or running, so no job step outlives its slurmd.
    if pid_alive "$STATE_DIR/slurmctld.pid"; then
        timeout 10 scancel --quiet --user="$(id -un)" 2>/dev/null || true
    fi
    # TERM all daemons at once, then wait (each takes 1-2 s to shut down); KILL what is left after 10 s.
    local name f pid pids=()
    for name in slurmd slurmctld munged; do
        f="$STATE_DIR/$name.pid"
        [[ -s "$f" ]] || continue
        pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$name:$pid")
        fi
        rm -f "$f"
    done
    local entry alive
    for _ in $(seq 1 100); do
        alive=0
        for entry in "${pids[@]}"; do kill -0 "${entry#*:}" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for entry in "${pids[@]}"; do
        if kill -0 "${entry#*:}" 2>/dev/null; then
            log "${entry%%:*} (pid ${entry#*:}) did not stop on TERM; sending KILL"
            kill -KILL "${entry#*:}" 2>/dev/null || true
        fi
        log "stopped ${entry%%:*} (pid ${entry#*:})"
    done
    # The copies in /etc/slurm go with the daemons: a client that finds a config there asks its stopped controller,
    # and the SLURM executor plugin does so (scontrol show config, ~9 s of retries) at every later snakemake start.
    for f in slurm.conf gres.conf; do
        if [[ -f "/etc/slurm/$f" ]] && cmp -s "/etc/slurm/$f" "$STATE_DIR/$f"; then rm -f "/etc/slurm/$f"; fi
    done
    if [[ -s "$LAST_FILE" && "$(cat "$LAST_FILE")" == "$STATE_DIR" ]]; then rm -f "$LAST_FILE"; fi
}

print_logs() {
    local f
    for f in munged.log slurmctld.log slurmd.log; do
        if [[ -f "$STATE_DIR/$f" ]]; then
            echo "----- $STATE_DIR/$f (last 40 lines) -----" >&2
            tail -n 40 "$STATE_DIR/$f" >&2 || true
        fi
    done
}

fail() {
    log "ERROR: $*"
    print_logs
    do_stop
    exit 1
}

port_in_use() {  # port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

ensure_installed() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    if [[ "$(id -u)" != 0 ]]; then
        echo "cannot install ${missing[*]}: not root (a local SLURM cluster needs root and apt)" >&2
        exit 3
    fi
    if ! command -v apt-get >/dev/null; then
        echo "cannot install ${missing[*]}: apt-get not found (needs Debian/Ubuntu)" >&2
        exit 3
    fi
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >"$STATE_DIR/apt.log" 2>&1; then
        apt-get update >>"$STATE_DIR/apt.log" 2>&1 || true
        apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >>"$STATE_DIR/apt.log" 2>&1 \
            || { tail -n 20 "$STATE_DIR/apt.log" >&2; echo "apt-get install of the SLURM packages failed" >&2; exit 1; }
    fi
}

start_munge() {
    # A munged that already answers (started by someone else) is used as it is, and left running on stop.
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        log "munged already running; using it"
        return 0
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key --force
        else
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
        fi
    fi
    chown -R munge:munge /etc/munge 2>/dev/null || true
    chmod 0700 /etc/munge
    chmod 0600 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    chmod 0755 /run/munge
    rm -f /run/munge/munged.pid
    # -F: foreground, so that $! is the daemon's PID
    setsid runuser -u munge -- munged -F --force --log-file="$STATE_DIR/munged.log" \
        </dev/null >>"$STATE_DIR/munged.out" 2>&1 &
    echo $! >"$STATE_DIR/munged.pid"
    for _ in $(seq 1 50); do
        if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
            log "munged started (pid $(cat "$STATE_DIR/munged.pid"))"
            return 0
        fi
        pid_alive "$STATE_DIR/munged.pid" || break
        sleep 0.1
    done
    cat "$STATE_DIR/munged.out" >&2 || true
    fail "munged did not come up"
}

write_config() {
    local hw cpus mem
    hw="$(slurmd -C | head -n 1)"
    cpus="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")"
    mem="$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")"
    [[ -n "$cpus" && -n "$mem" ]] || fail "could not read CPUs/RealMemory from 'slurmd -C': $hw"
    mkdir -p "$STATE_DIR/ctld" "$STATE_DIR/d"
    # Only CPUs= (no sockets/cores/threads): with CR_CPU_Memory every CPU is allocatable on its own.
    cat >"$STATE_DIR/slurm.conf" <<EOF
# Written by tests/slurm/cluster.sh: a one-node test cluster on $NODE.
ClusterName=maple-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/d
SlurmctldPidFile=$STATE_DIR/slurmctld.daemon.pid
SlurmdPidFile=$STATE_DIR/slurmd.daemon.pid
SlurmctldLogFile=$STATE_DIR/slurmctld.log
SlurmdLogFile=$STATE_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups, no accounting daemon: works in containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=256
# reject at submission a job that can never run here (more CPUs than the node has), instead of pending forever
EnforcePartLimits=ALL
GresTypes=gpu
# without slurmdbd, squeue only knows jobs that ended less than MinJobAge seconds ago
MinJobAge=3600
ReturnToService=2
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    # A gres without File= makes the node invalid; /dev/null and /dev/zero stand in for /dev/nvidia0 and 1
    # (without cgroups SLURM only names them: a job's CUDA_VISIBLE_DEVICES is the index of its GPU, 0 or 1).
    cat >"$STATE_DIR/gres.conf" <<EOF
NodeName=$NODE Name=gpu File=/dev/null
NodeName=$NODE Name=gpu File=/dev/zero
EOF
    : >"$STATE_DIR/cgroup.conf"
    echo "export SLURM_CONF=$STATE_DIR/slurm.conf" >"$STATE_DIR/env.sh"
    # So that sinfo/sbatch/srun without SLURM_CONF find this cluster too.
    mkdir -p /etc/slurm
    cp "$STATE_DIR/slurm.conf" "$STATE_DIR/gres.conf" /etc/slurm/
}

do_start() {
    if [[ "$(id -u)" != 0 ]]; then
        echo "cannot start a local SLURM cluster: not root (slurmd must run as root)" >&2
        exit 3
    fi
    ensure_installed
    # A previous start that was never stopped (this STATE_DIR, or the last one this script started,
    # e.g. after a killed test run): stop its daemons first.
    local last=""
    [[ -s "$LAST_FILE" ]] && last="$(cat "$LAST_FILE")"
    if [[ -n "$last" && "$last" != "$STATE_DIR" && -d "$last" ]]; then
        log "stopping the cluster left running in $last"
        STATE_DIR="$last" SLURM_CONF="$last/slurm.conf" do_stop
    fi
    do_stop
    local p
    for p in "$CTLD_PORT" "$SLURMD_PORT"; do
        if port_in_use "$p"; then
            echo "port $p is already in use (another slurmctld/slurmd?); stop it or set SLURM_TEST_CTLD_PORT/SLURM_TEST_SLURMD_PORT" >&2
            exit 1
        fi
    done
    rm -rf "$STATE_DIR/ctld" "$STATE_DIR/d"
    rm -f "$STATE_DIR"/*.log "$STATE_DIR"/*.out
    mkdir -p "$(dirname "$LAST_FILE")"
    echo "$STATE_DIR" >"$LAST_FILE"
    start_munge
    write_config

    # -D: foreground, so that $! is the daemon's PID; -i: ignore unreadable state; -c: start with no old jobs
    setsid slurmctld -D -i -c -f "$SLURM_CONF" </dev/null >>"$STATE_DIR/slurmctld.out" 2>&1 &
    echo $! >"$STATE_DIR/slurmctld.pid"
    for _ in $(seq 1 100); do
        scontrol ping 2>/dev/null | grep -q UP && break
        pid_alive "$STATE_DIR/slurmctld.pid" || fail "slurmctld exited: $(tail -n 5 "$STATE_DIR/slurmctld.out" 2>/dev/null)"
        sleep 0.2
    done
    setsid slurmd -D -N "$NODE" -f "$SLURM_CONF" </dev/null >>"$STATE_DIR/slurmd.out" 2>&1 &
    echo $! >"$STATE_DIR/slurmd.pid"

    local deadline=$((SECONDS + START_TIMEOUT)) state=""
    while ((SECONDS < deadline)); do
        pid_alive "$STATE_DIR/slurmctld.pid" || fail "slurmctld exited: $(tail -n 5 "$STATE_DIR/slurmctld.out" 2>/dev/null)"
        pid_alive "$STATE_DIR/slurmd.pid" || fail "slurmd exited: $(tail -n 5 "$STATE_DIR/slurmd.out" 2>/dev/null)"
        state="$(sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -n 1 || true)"
        if [[ "$state" == "idle" ]]; then
            log "cluster up: node $NODE idle in partition debug (SLURM_CONF=$SLURM_CONF)"
            sinfo -N -o '%N %P %t %c %m %G' >&2 || true
            return 0
        fi
        # A node left DOWN/DRAIN by an earlier run comes back with RESUME.
        case "$state" in
            down*|drain*|drng*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    sinfo -N -l >&2 || true
    scontrol show node "$NODE" >&2 || true
    fail "node $NODE not idle after ${START_TIMEOUT}s (last state: '${state:-none}')"
}

case "$CMD" in
    start) do_start ;;
    stop) do_stop ;;
    status) sinfo -N -o '%N %P %t %c %m %G'; squeue --states=all ;;
    *) echo "usage: $0 start|stop|status STATE_DIR" >&2; exit 2 ;;
esac
