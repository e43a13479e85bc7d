#!/usr/bin/env bash
# Two "cluster nodes" on one machine: a real NFSv3 server (nfs-ganesha, FSAL_VFS, on 127.0.0.1)
# exporting <rig-dir>/export, mounted twice through FUSE by tools/nfs-node (zarrtx-nfs-node, a
# userspace NFSv3 client): <rig-dir>/node-a and <rig-dir>/node-b. Each mount has its own NFS
# connections, kernel caches and kernel lock table (locks are node-local).
#
#   bash scripts/nfs-rig.sh start  <rig-dir>   install what is missing, build, start, mount, verify;
#                                              prints ZARRTX_NFS_NODE_A=... and ZARRTX_NFS_NODE_B=...
#   bash scripts/nfs-rig.sh stop   <rig-dir>   unmount, kill exactly the recorded pids
#   bash scripts/nfs-rig.sh status <rig-dir>   exit 0 when everything is up (prints the same lines)
#
# Environment (all optional):
#   ZARRTX_NFS_PORT (2049), ZARRTX_NFS_MOUNT_PORT (20048)   server ports, on 127.0.0.1 only
#   ZARRTX_NFS_NODE_BIN        a prebuilt zarrtx-nfs-node (else built with cargo)
#   ZARRTX_NFS_TARGET_DIR      cargo target dir for that build (<repo>/target/nfs-node)
#   ZARRTX_NFS_START_TIMEOUT   seconds for the server and both mounts to come up (30)
#   ZARRTX_NFS_NODE_ARGS       extra arguments for both node daemons (e.g. "--timeout-secs 5")
#
# start fails (nonzero, with the reason and the log tails on stderr) when anything does not come
# up in time; it is idempotent (a healthy rig is reused) and cleans up after a crashed run (stale
# mounts, stale pid files). Only 127.0.0.1 is ever contacted.
set -euo pipefail

NFS_PORT=${ZARRTX_NFS_PORT:-2049}
MNT_PORT=${ZARRTX_NFS_MOUNT_PORT:-20048}
START_TIMEOUT=${ZARRTX_NFS_START_TIMEOUT:-30}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODES=(a b)

say() { echo "nfs-rig: $*" >&2; }

usage() {
    echo "usage: bash scripts/nfs-rig.sh start|stop|status <rig-dir>" >&2
    exit 2
}

[ $# -eq 2 ] || usage
CMD=$1
if [ ! -d "$2" ]; then
    case "$CMD" in
        start) mkdir -p "$2" ;;
        stop) echo "nfs-rig: no rig in $2" >&2; exit 0 ;;
        status) echo "nfs-rig: no rig in $2" >&2; exit 1 ;;
        *) usage ;;
    esac
fi
RIG=$(cd "$2" && pwd)
case "$RIG" in *[[:space:]]*) say "the rig directory must not contain whitespace: $RIG"; exit 2 ;; esac
PIDS=$RIG/pids

# ---------------------------------------------------------------------------------------------
# pid bookkeeping: lines "role pid" in $RIG/pids

# expected process name (comm) for a role
comm_of() {
    case "$1" in
        node-*) echo zarrtx-nfs-node ;;
        ganesha) echo ganesha.nfsd ;;
        rpcbind) echo rpcbind ;;
        *) echo "?" ;;
    esac
}

# true when pid $2 is alive, not a zombie, and is the process recorded for role $1
pid_is() {
    local role=$1 pid=$2 comm state
    [ -r "/proc/$pid/comm" ] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
    [ "$state" != Z ] || return 1
    # comm is truncated to 15 characters
    [ "$comm" = "$(comm_of "$role" | cut -c1-15)" ]
}

# Records a just-spawned background process once it has exec'd its program: until then its comm is
# still "bash" or "setsid", and pid_is (which must stay strict, to never kill a recycled pid) would
# take it for gone.
spawned() {
    local role=$1 pid=$2 want i comm
    want=$(comm_of "$role" | cut -c1-15)
    record "$role" "$pid"
    for ((i = 0; i < 100; i++)); do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 0
        [ "$comm" = "$want" ] && return 0
        sleep 0.02
    done
    say "$role (pid $pid) did not exec $want"
    return 0
}

recorded_pid() {
    [ -f "$PIDS" ] || return 1
    awk -v r="$1" '$1 == r {print $2}' "$PIDS" | tail -n 1
}

record() {
    echo "$1 $2" >>"$PIDS"
}

is_mounted() {
    # /proc/mounts escapes spaces; the rig dir has none
    awk -v m="$1" '$2 == m {found=1} END {exit !found}' /proc/mounts
}

# ---------------------------------------------------------------------------------------------

kill_role() {
    local role=$1 grace=$2 pid i
    pid=$(recorded_pid "$role") || return 0
    [ -n "$pid" ] || return 0
    if ! pid_is "$role" "$pid"; then
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        pid_is "$role" "$pid" || return 0
        sleep 0.1
    done
    say "$role (pid $pid) ignored SIGTERM for ${grace}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_is "$role" "$pid" || return 0
        sleep 0.1
    done
    say "$role (pid $pid) is still there after SIGKILL"
    return 1
}

unmount_node() {
    local mnt=$RIG/node-$1 i
    for ((i = 0; i < 20; i++)); do
        is_mounted "$mnt" || return 0
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
        sleep 0.1
    done
    is_mounted "$mnt" && { say "cannot unmount $mnt"; return 1; }
    return 0
}

do_stop() {
    local rc=0 n
    # node daemons first: on SIGTERM they unmount themselves
    for n in "${NODES[@]}"; do
        kill_role "node-$n" 5 || rc=1
    done
    for n in "${NODES[@]}"; do
        unmount_node "$n" || rc=1
    done
    kill_role ganesha 10 || rc=1
    kill_role rpcbind 5 || rc=1
    rm -f "$PIDS"
    return $rc
}

# ---------------------------------------------------------------------------------------------

rpc_up() {
    # $1 port, $2 program, $3 version: a NULL call over TCP straight to the port (no portmapper)
    timeout -k 1 5 rpcinfo -n "$1" -t 127.0.0.1 "$2" "$3" >/dev/null 2>&1
}

env_lines() {
    echo "ZARRTX_NFS_NODE_A=$RIG/node-a"
    echo "ZARRTX_NFS_NODE_B=$RIG/node-b"
}

healthy() {
    local n pid
    pid=$(recorded_pid ganesha) || return 1
    pid_is ganesha "$pid" || return 1
    rpc_up "$NFS_PORT" nfs 3 || return 1
    for n in "${NODES[@]}"; do
        pid=$(recorded_pid "node-$n") || return 1
        pid_is "node-$n" "$pid" || return 1
        is_mounted "$RIG/node-$n" || return 1
        timeout -k 1 10 stat "$RIG/node-$n/." >/dev/null 2>&1 || return 1
    done
    return 0
}

log_tails() {
    local f
    for f in "$RIG"/ganesha.log "$RIG"/ganesha.out "$RIG"/rpcbind.out "$RIG"/node-a.log "$RIG"/node-b.log; do
        [ -s "$f" ] || continue
        echo "----- tail of $f (without ganesha's harmless dbus/krb5 start-up noise)" >&2
        grep -vE 'DBUS|dbus_|keytab|krb5|gssd|default realm|RADOS|SetComponentLogLevel|credentials for principal' "$f" |
            tail -n 15 >&2 || true
    done
}

fail() {
    say "start FAILED: $*"
    log_tails
    do_stop || true
    exit 1
}

ensure_packages() {
    local missing=() p
    # "installed" only: a removed package keeps its config files and `dpkg -s` still succeeds
    for p in nfs-ganesha nfs-ganesha-vfs rpcbind; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >"$RIG/apt.log" 2>&1; then
        apt-get update >>"$RIG/apt.log" 2>&1 || true
        apt-get install -y --no-install-recommends "${missing[@]}" >>"$RIG/apt.log" 2>&1 ||
            { tail -n 20 "$RIG/apt.log" >&2; say "apt-get install ${missing[*]} failed"; exit 1; }
    fi
    for p in ganesha.nfsd rpcbind rpcinfo; do
        command -v "$p" >/dev/null || { say "$p is missing after installing ${missing[*]}"; exit 1; }
    done
}

node_binary() {
    if [ -n "${ZARRTX_NFS_NODE_BIN:-}" ]; then
        [ -x "$ZARRTX_NFS_NODE_BIN" ] || { say "ZARRTX_NFS_NODE_BIN=$ZARRTX_NFS_NODE_BIN is not executable"; exit 1; }
        echo "$ZARRTX_NFS_NODE_BIN"
        return
    fi
    local target=${ZARRTX_NFS_TARGET_DIR:-$REPO/target/nfs-node}
    CARGO_TARGET_DIR=$target cargo build --release --locked -j 2 --quiet \
        --manifest-path "$REPO/tools/nfs-node/Cargo.toml" --bin zarrtx-nfs-node >&2 ||
        { say "building tools/nfs-node failed"; exit 1; }
    echo "$target/release/zarrtx-nfs-node"
}

write_config() {
    cat >"$RIG/ganesha.conf" <<EOF
# written by scripts/nfs-rig.sh
NFS_CORE_PARAM {
    Protocols = 3, 4;
    Bind_addr = 127.0.0.1;
    NFS_Port = $NFS_PORT;
    MNT_Port = $MNT_PORT;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    mount_path_pseudo = true;
}
NFSv4 {
    Graceless = true;
}
EXPORT {
    Export_Id = 1;
    Path = "$RIG/export";
    Pseudo = /export;
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 3, 4;
    Transports = TCP;
    SecType = sys;
    FSAL {
        Name = VFS;
    }
}
EOF
}

wait_for() {
    # $1 deadline (epoch s), $2 description, rest: command
    local deadline=$1 what=$2
    shift 2
    while ! "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "$what did not come up within ${START_TIMEOUT}s"
        sleep 0.1
    done
}

# 0 when ganesha answers on both ports, 1 when it exited; fails the start at the deadline
wait_server() {
    local pid
    pid=$(recorded_pid ganesha)
    while :; do
        pid_is ganesha "$pid" || return 1
        if rpc_up "$NFS_PORT" nfs 3 && rpc_up "$MNT_PORT" mountd 3; then
            return 0
        fi
        [ "$(date +%s)" -lt "$1" ] || fail "ganesha (127.0.0.1:$NFS_PORT, mountd :$MNT_PORT) did not come up within ${START_TIMEOUT}s"
        sleep 0.1
    done
}

alive_or_fail() {
    local role=$1 pid
    pid=$(recorded_pid "$role")
    pid_is "$role" "$pid" || fail "$role (pid $pid) exited"
}

do_start() {
    if [ -f "$PIDS" ] && healthy; then
        say "rig in $RIG is already running"
        env_lines
        return 0
    fi
    # a crashed or half-started run: clean it up
    do_stop >/dev/null 2>&1 || true
    local n
    for n in "${NODES[@]}"; do
        unmount_node "$n" || { say "cannot clear a stale mount at $RIG/node-$n"; exit 1; }
    done

    ensure_packages
    local bin
    bin=$(node_binary)

    local t0 deadline
    t0=$(date +%s.%N)
    deadline=$(($(date +%s) + START_TIMEOUT))
    mkdir -p "$RIG/export" "$RIG/node-a" "$RIG/node-b"
    : >"$PIDS"

    if rpc_up 111 portmapper 2; then
        say "using the running portmapper"
    else
        setsid rpcbind -f -w </dev/null >"$RIG/rpcbind.out" 2>&1 &
        spawned rpcbind $!
        rpcbind_up() { alive_or_fail rpcbind; rpc_up 111 portmapper 2; }
        wait_for "$deadline" "rpcbind" rpcbind_up
    fi

    if rpc_up "$NFS_PORT" nfs 3; then
        fail "an NFS server already answers on 127.0.0.1:$NFS_PORT (another rig? stop it, or set ZARRTX_NFS_PORT and ZARRTX_NFS_MOUNT_PORT)"
    fi
    write_config
    [ -f "$RIG/ganesha.log" ] && mv -f "$RIG/ganesha.log" "$RIG/ganesha.log.prev"
    # if ganesha exits during start-up (e.g. a port still held by a dying instance), try again,
    # up to 3 times
    local tries=0
    while :; do
        tries=$((tries + 1))
        rm -f "$RIG/ganesha.pid"
        setsid ganesha.nfsd -F -f "$RIG/ganesha.conf" -L "$RIG/ganesha.log" -p "$RIG/ganesha.pid" -N NIV_WARN \
            </dev/null >"$RIG/ganesha.out" 2>&1 &
        spawned ganesha $!
        if wait_server "$deadline"; then
            break
        fi
        [ $tries -lt 3 ] || fail "ganesha exited during start-up $tries times"
        say "ganesha exited during start-up (try $tries): starting it again (its log: $RIG/ganesha.log.failed-$tries)"
        mv -f "$RIG/ganesha.log" "$RIG/ganesha.log.failed-$tries" 2>/dev/null || true
    done

    local extra=()
    # shellcheck disable=SC2206
    [ -n "${ZARRTX_NFS_NODE_ARGS:-}" ] && extra=(${ZARRTX_NFS_NODE_ARGS})
    for n in "${NODES[@]}"; do
        setsid "$bin" --server 127.0.0.1 --nfs-port "$NFS_PORT" --mount-port "$MNT_PORT" --export /export \
            --name "node-$n" "${extra[@]}" "$RIG/node-$n" </dev/null >"$RIG/node-$n.log" 2>&1 &
        spawned "node-$n" $!
    done
    for n in "${NODES[@]}"; do
        node_up() { alive_or_fail "node-$1"; is_mounted "$RIG/node-$1" && timeout -k 1 10 stat "$RIG/node-$1/." >/dev/null 2>&1; }
        wait_for "$deadline" "the FUSE mount $RIG/node-$n" node_up "$n"
    done

    # both nodes see each other's writes
    local token=rig-check-$$-$RANDOM got
    echo "$token-a" >"$RIG/node-a/.$token" || fail "cannot write through node-a"
    got=$(cat "$RIG/node-b/.$token" 2>/dev/null) || true
    [ "$got" = "$token-a" ] || fail "node-b does not see node-a's write (got '$got')"
    echo "$token-b" >"$RIG/node-b/.$token" || fail "cannot write through node-b"
    got=$(cat "$RIG/node-a/.$token" 2>/dev/null) || true
    [ "$got" = "$token-b" ] || fail "node-a does not see node-b's write (got '$got')"
    rm -f "$RIG/node-a/.$token"
    [ ! -e "$RIG/node-b/.$token" ] || fail "node-b still sees a file node-a removed"
    [ ! -e "$RIG/export/.$token" ] || fail "the export still holds the check file"

    say "up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')s: ganesha on 127.0.0.1:$NFS_PORT, nodes $RIG/node-a $RIG/node-b (pids in $PIDS)"
    env_lines
}

do_status() {
    local role pid state
    if [ ! -f "$PIDS" ]; then
        say "no rig in $RIG"
        return 1
    fi
    while read -r role pid; do
        if pid_is "$role" "$pid"; then state=running; else state=gone; fi
        echo "$role $pid $state" >&2
    done <"$PIDS"
    if healthy; then
        say "rig in $RIG is up"
        env_lines
        return 0
    fi
    say "rig in $RIG is NOT healthy"
    return 1
}

case "$CMD" in
    start) do_start ;;
    stop)
        if do_stop; then say "stopped rig in $RIG"; else say "stop of $RIG had problems"; exit 1; fi
        ;;
    status) do_status ;;
    *) usage ;;
esac
