#!/usr/bin/env bash
# Single-node throw-away Slurm cluster on localhost, for tests run as root.
#
#   tests/slurm/cluster.sh start DIR   # installs packages if missing, starts
#                                      # munged + slurmctld + slurmd, waits for
#                                      # the node to be idle; prints
#                                      # `export SLURM_CONF=...` on stdout
#   tests/slurm/cluster.sh stop DIR    # cancels all jobs, stops the daemons
#   tests/slurm/cluster.sh status DIR  # exit 0 when the cluster answers
#   tests/slurm/cluster.sh logs DIR    # prints the daemon logs
#
# Usage from a script:   eval "$(tests/slurm/cluster.sh start "$DIR")"
# or afterwards:          . "$DIR/env.sh"
#
# Everything (config, state, spool, logs, pid files, munge socket) lives under
# DIR; a private munged is started on DIR/munge/munge.socket.2 so a system
# munged (if any) is neither needed nor disturbed.  Only /etc/munge/munge.key is
# shared (created when missing).  No cgroups are needed: proctrack/pgid,
# task/none, jobacct_gather/none.  No accounting (sacct does not work).
# A requeued job waits cred_expire+1 s (11 s here, 121 s with Slurm's default)
# before it can run again.  Job ids continue across restarts on the same DIR.
#
# Progress and errors go to stderr; only the export lines go to stdout.
# Knobs (environment): SLURM_CI_START_TIMEOUT (default 60 s),
# SLURM_CI_MAX_ARRAY_SIZE (default 5; the largest array INDEX is this minus 1),
# SLURM_CI_CRED_EXPIRE (default 10 s: a requeued job waits this + 1 s),
# SLURM_CI_PROCTRACK (default proctrack/pgid), SLURM_CI_NO_INSTALL=1 (never
# apt-get).  Tested with Slurm 22.05.8 / munge 0.5.15 (Debian 12).
set -euo pipefail

START_TIMEOUT=${SLURM_CI_START_TIMEOUT:-60}
MAX_ARRAY_SIZE=${SLURM_CI_MAX_ARRAY_SIZE:-5}
CRED_EXPIRE=${SLURM_CI_CRED_EXPIRE:-10}
PROCTRACK=${SLURM_CI_PROCTRACK:-proctrack/pgid}
CLUSTER_NAME=nerlabci
MUNGE_KEY=/etc/munge/munge.key

say() { echo "cluster.sh: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

usage() {
    echo "usage: $0 {start|stop|status|logs} DIR" >&2
    exit 2
}

# ---------------------------------------------------------------- helpers

pid_alive() { # pidfile -> 0 when the process in it is alive
    local f=$1 pid
    [[ -s $f ]] || return 1
    pid=$(tr -dc 0-9 <"$f")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

own_ancestors() { # pids of this shell and its ancestors
    local p=$$
    while [[ -n $p && $p != 0 ]]; do
        echo "$p"
        p=$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ')
    done
}

job_orphans() { # pids of processes started by jobs of THIS cluster that are
    # still alive: their environment has SLURM_JOB_ID and SLURM_CONF=$CONF
    local e p skip env
    skip=" $(own_ancestors | tr '\n' ' ') "
    for e in /proc/[0-9]*/environ; do
        p=${e#/proc/}
        p=${p%/environ}
        [[ $skip == *" $p "* ]] && continue
        env=$(tr '\0' '\n' 2>/dev/null <"$e") || continue
        grep -qx "SLURM_CONF=$CONF" <<<"$env" || continue
        grep -q '^SLURM_JOB_ID=' <<<"$env" || continue
        echo "$p"
    done
}

pid_of() { [[ -s $1 ]] && tr -dc 0-9 <"$1" || true; }

descendants() { # pid -> all descendant pids (recursive), one per line
    local p c
    for p in "$@"; do
        for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do
            echo "$c"
            descendants "$c"
        done
    done
}

wait_gone() { # timeout_s pid... -> 0 when all pids are gone
    local deadline=$((SECONDS + $1)) p alive
    shift
    while :; do
        alive=0
        for p in "$@"; do
            # a zombie counts as gone
            if kill -0 "$p" 2>/dev/null && [[ $(ps -o stat= -p "$p" 2>/dev/null) != Z* ]]; then
                alive=1
            fi
        done
        ((alive == 0)) && return 0
        ((SECONDS >= deadline)) && return 1
        sleep 0.2
    done
}

kill_pids() { # pids... : TERM, wait 10 s, then KILL
    local p live=()
    for p in "$@"; do
        [[ -n $p ]] && kill -0 "$p" 2>/dev/null && live+=("$p")
    done
    ((${#live[@]})) || return 0
    kill -TERM "${live[@]}" 2>/dev/null || true
    if ! wait_gone 10 "${live[@]}"; then
        say "processes ${live[*]} ignored SIGTERM; sending SIGKILL"
        kill -KILL "${live[@]}" 2>/dev/null || true
        wait_gone 5 "${live[@]}" || say "WARNING: could not kill ${live[*]}"
    fi
}

port_free() { # port -> 0 when nothing listens on it (tcp, any address)
    ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

pick_ports() { # -> "ctld_port slurmd_port", two consecutive free ports in
    # 20000-31999 (below the kernel's ephemeral range, 32768+)
    local _ p
    for _ in $(seq 1 200); do
        p=$((20000 + (RANDOM % 6000) * 2))
        if port_free "$p" && port_free $((p + 1)); then
            echo "$p $((p + 1))"
            return 0
        fi
    done
    die "no free port pair found"
}

print_logs() {
    local f
    for f in "$DIR"/log/slurmctld.log "$DIR"/log/slurmd.log "$DIR"/munge/munged.log; do
        [[ -f $f ]] || continue
        echo "===== $f (last 80 lines) =====" >&2
        tail -n 80 "$f" >&2 || true
    done
}

fail() { # like die, but dumps the daemon logs first, then stops what
    # start may have left running (so a failed start leaves no processes)
    say "ERROR: $*"
    print_logs
    if [[ ${cmd:-} == start ]]; then
        say "stopping what was started"
        set +e
        stop_slurm quiet
        stop_munged
    fi
    exit 1
}

# ---------------------------------------------------------------- install

ensure_packages() {
    local missing=0 b
    for b in munged munge unmunge slurmctld slurmd sbatch squeue scontrol sinfo scancel ss; do
        command -v "$b" >/dev/null 2>&1 || { missing=1; break; }
    done
    ((missing)) || return 0
    [[ ${SLURM_CI_NO_INSTALL:-0} == 1 ]] && die "slurm/munge binaries missing and SLURM_CI_NO_INSTALL=1"
    ((EUID == 0)) || die "slurm/munge binaries missing and not root; install slurm-wlm munge"
    say "installing slurm-wlm munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends slurm-wlm munge iproute2 procps >&2 ||
        die "apt-get install slurm-wlm munge failed"
}

# ---------------------------------------------------------------- munge

ensure_munge_key() {
    if [[ ! -s $MUNGE_KEY ]]; then
        say "creating $MUNGE_KEY"
        install -d -m 700 -o munge -g munge /etc/munge
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$MUNGE_KEY" --force >&2
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 400 "$MUNGE_KEY"
}

munge_ok() {
    munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1
}

start_munged() {
    if pid_alive "$DIR/munge/munged.pid" && munge_ok; then
        say "munged already running (pid $(pid_of "$DIR/munge/munged.pid"))"
        return 0
    fi
    kill_pids "$(pid_of "$DIR/munge/munged.pid")"
    rm -f "$DIR/munge/munged.pid" "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    ensure_munge_key
    local args=(--socket="$MUNGE_SOCKET" --pid-file="$DIR/munge/munged.pid"
        --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed"
        --key-file="$MUNGE_KEY")
    # munged runs as the munge user when that user can reach DIR (not the
    # case under e.g. /root, mode 700); otherwise as root.  --force: munged
    # refuses "insecure" paths (a parent dir writable by a non-root group, a
    # key not owned by the running user, ...); --force makes those warnings.
    if id munge >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1 &&
        runuser -u munge -- test -x "$DIR" 2>/dev/null; then
        install -d -m 755 -o munge -g munge "$DIR/munge"
        chown -R munge:munge "$DIR/munge"
        runuser -u munge -- munged "${args[@]}" --force >&2 ||
            fail "munged failed to start"
    else
        say "munge user cannot reach $DIR: running munged as root"
        install -d -m 755 "$DIR/munge"
        chown root:root "$DIR/munge" "$DIR"/munge/* 2>/dev/null || true
        munged "${args[@]}" --force >&2 || fail "munged failed to start"
    fi
    local _
    for _ in $(seq 1 50); do
        munge_ok && break
        sleep 0.1
    done
    munge_ok || fail "munge -n | unmunge does not work on $MUNGE_SOCKET"
    say "munged running (pid $(pid_of "$DIR/munge/munged.pid"))"
}

# ---------------------------------------------------------------- slurm

write_conf() {
    local host cpus mem_kb mem_mb ctld_port slurmd_port
    host=$(hostname -s)
    cpus=$(nproc)
    mem_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    mem_mb=$((mem_kb * 9 / 10 / 1024))
    ((mem_mb >= 256)) || mem_mb=256
    read -r ctld_port slurmd_port < <(pick_ports) || true
    [[ -n ${slurmd_port:-} ]] || fail "no free port pair found"

    cat >"$CONF" <<EOF
# Generated by tests/slurm/cluster.sh -- throw-away single-node test cluster.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
# cred_expire (default 120 s) is also the minimum delay before a requeued job
# may start again (its BeginTime is set to requeue time + cred_expire + 1).
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=$CRED_EXPIRE
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups (containers usually lack them).  proctrack/pgid rather than
# proctrack/linuxproc: linuxproc loses processes that a job script left in
# the background once the script exits (they are reparented to init), pgid
# still kills them through the process group.
ProctrackType=$PROCTRACK
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# small on purpose: callers must split big arrays
MaxArraySize=$MAX_ARRAY_SIZE
ReturnToService=2
# node hardware may not match what we declare exactly
SlurmdParameters=config_overrides
# quicker scheduling in tests
SchedulerParameters=sched_interval=2
KillWait=5
InactiveLimit=0
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    say "wrote $CONF (ports $ctld_port/$slurmd_port, CPUs=$cpus RealMemory=$mem_mb)"
}

slurm_up() { # node answers and is idle/mixed/allocated (i.e. usable)
    local st
    st=$(timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n1) || return 1
    [[ $st == idle* || $st == mixed* || $st == allocated* ]]
}

start_slurm() {
    local host
    host=$(hostname -s)
    if pid_alive "$DIR/run/slurmctld.pid" && pid_alive "$DIR/run/slurmd.pid" && slurm_up; then
        say "slurmctld/slurmd already running"
        return 0
    fi
    # half-running or stale: stop whatever is left, then start afresh
    stop_slurm quiet
    write_conf
    # slurmctld: -i ignores errors in the saved state
    slurmctld -f "$CONF" -i >&2 || fail "slurmctld failed to start"
    slurmd -f "$CONF" >&2 || fail "slurmd failed to start"

    local deadline=$((SECONDS + START_TIMEOUT)) st=""
    while ((SECONDS < deadline)); do
        pid_alive "$DIR/run/slurmctld.pid" || { sleep 0.5; pid_alive "$DIR/run/slurmctld.pid" || fail "slurmctld died"; }
        pid_alive "$DIR/run/slurmd.pid" || { sleep 0.5; pid_alive "$DIR/run/slurmd.pid" || fail "slurmd died"; }
        st=$(timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)
        case $st in
        idle* | mixed* | allocated*) break ;;
        down* | drain* | fail*)
            # e.g. left DOWN by a previous run's state; ReturnToService=2
            # usually handles it, but make sure.
            scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
            ;;
        esac
        sleep 0.5
    done
    slurm_up || {
        sinfo -N -l >&2 || true
        scontrol show node "$host" >&2 || true
        fail "node not idle after ${START_TIMEOUT}s (last state: '${st:-no answer}')"
    }
    say "slurm up: $(sinfo -h -N -o '%N %T %c CPUs %m MB' 2>/dev/null)"
}

stop_slurm() { # [quiet]
    local quiet=${1:-} ctld slurmd pids=()
    ctld=$(pid_of "$DIR/run/slurmctld.pid")
    slurmd=$(pid_of "$DIR/run/slurmd.pid")
    if pid_alive "$DIR/run/slurmctld.pid"; then
        # cancel every job and wait (briefly) for them to end
        if [[ -f $CONF ]]; then
            timeout 10 scancel --quiet --full --state=PENDING >/dev/null 2>&1 || true
            local ids
            ids=$(timeout 10 squeue -h -o '%A' 2>/dev/null || true)
            if [[ -n $ids ]]; then
                # shellcheck disable=SC2086
                timeout 10 scancel --full $ids >/dev/null 2>&1 || true
                local deadline=$((SECONDS + 15))
                while ((SECONDS < deadline)); do
                    [[ -z $(timeout 10 squeue -h -t PD,R,CG,S,CF -o '%A' 2>/dev/null || true) ]] && break
                    sleep 0.5
                done
            fi
        fi
    fi
    # everything under slurmd (slurmstepd + job processes) must go too:
    # killing slurmd does not kill running jobs.
    if [[ -n $slurmd ]] && kill -0 "$slurmd" 2>/dev/null; then
        mapfile -t pids < <(descendants "$slurmd")
    fi
    [[ -n $slurmd ]] && kill_pids "$slurmd"
    ((${#pids[@]})) && kill_pids "${pids[@]}"
    [[ -n $ctld ]] && kill_pids "$ctld"
    # job processes that escaped (daemonized / reparented to init)
    mapfile -t pids < <(job_orphans)
    if ((${#pids[@]})); then
        say "killing ${#pids[@]} leftover job process(es): ${pids[*]}"
        kill_pids "${pids[@]}"
    fi
    rm -f "$DIR/run/slurmctld.pid" "$DIR/run/slurmd.pid"
    [[ -n $quiet ]] || say "slurmctld/slurmd stopped"
}

stop_munged() {
    local pid
    pid=$(pid_of "$DIR/munge/munged.pid")
    [[ -n $pid ]] && kill_pids "$pid"
    rm -f "$DIR/munge/munged.pid" "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    say "munged stopped"
}

print_env() {
    cat >"$DIR/env.sh" <<EOF
export SLURM_CONF=$CONF
EOF
    cat "$DIR/env.sh"
}

# ---------------------------------------------------------------- main

(($# == 2)) || usage
cmd=$1
mkdir -p "$2"
DIR=$(cd "$2" && pwd -P)
CONF=$DIR/slurm.conf
MUNGE_SOCKET=$DIR/munge/munge.socket.2
export SLURM_CONF=$CONF

case $cmd in
start)
    t0=$SECONDS
    ((EUID == 0)) || die "must run as root (SlurmUser=root)"
    ensure_packages
    # munged (as user munge) must be able to traverse DIR
    chmod a+x "$DIR"
    mkdir -p "$DIR"/{state,spool,log,run}
    start_munged
    start_slurm
    say "started in $((SECONDS - t0))s"
    print_env
    ;;
stop)
    if command -v slurmctld >/dev/null 2>&1; then
        stop_slurm
    fi
    stop_munged
    ;;
status)
    pid_alive "$DIR/munge/munged.pid" && pid_alive "$DIR/run/slurmctld.pid" &&
        pid_alive "$DIR/run/slurmd.pid" && slurm_up
    ;;
logs)
    print_logs
    ;;
*) usage ;;
esac
