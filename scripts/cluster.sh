#!/usr/bin/env bash
# A simulated cluster on one machine, for running MPI jobs across "hosts".
#
#   cluster.sh up [N]           N nodes, node1..nodeN (default 3)
#   cluster.sh down             kills every process of the nodes, removes them (idempotent)
#   cluster.sh exec NODE CMD... runs CMD on NODE (in its namespaces, as this user, this cwd)
#   cluster.sh status           the nodes, their addresses, links and processes
#   cluster.sh link NODE down|up   pulls or plugs NODE's cable (the switch side of its veth)
#   cluster.sh kill NODE [NAME] SIGKILLs every process of NODE (the node stays, empty),
#                               or only those named NAME (a job's ranks; Open MPI's daemon stays)
#   cluster.sh pids NODE        the pids (as seen here) of NODE's processes, but its init
#
# Each node is a network namespace (eth0 at 10.250.0.(10+K)/24, lo up), a UTS
# namespace (hostname nodeK), a pid namespace and a mount namespace. The last
# two are what make a node a host of its own for procpool: in one pid
# namespace a rank could open another node's /proc/PID/fd/N, and the MPI pool
# would map rank 0's doorbells across "hosts" (rank_bells.cpp). In its mount
# namespace a node has its own /proc, /sys (its own net devices), /dev/shm
# (empty tmpfs) and /etc/hosts (every node's name, so Open MPI's --host nodeK
# resolves). /tmp stays the machine's (the build may live there), but `exec`
# sets TMPDIR to a folder of the node's own: Open MPI and PMIx keep session
# files there, named by pids that repeat across pid namespaces.
# Each node's namespaces live as long as its init (a reaper, pid 1 there).
#
# The nodes' veths end on a bridge in a hub namespace, not in the root one:
# the range exists only among the nodes, the machine has no route to it, and
# no real network (whatever range it uses) can clash with it or be reached.
# 10.250.0.0/24: private (RFC 1918), and easy to name in Open MPI's
# btl_tcp_if_include / oob_tcp_if_include.
#
# Every name starts with a prefix, PROCPOOL_CLUSTER (default "ppc", at most 8
# of [a-z0-9]): netns PREFIX-hub and PREFIX-nodeK, bridge PREFIX-br, veths
# PREFIX-hK, state in /run/procpool-cluster/PREFIX. `down` touches nothing
# else, and two clusters with different prefixes can be up at once.
#
# Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN), iproute2, util-linux (nsenter,
# unshare) and python3. Where namespaces cannot be made, `up` says why in one
# line and exits 77 (meson's "skipped").
#
# Open MPI: scripts/cluster_rsh.sh is the rsh agent; mpirun runs on node1:
#   cluster.sh exec node1 mpirun --host node1:1,node2:1,node3:1 \
#     --mca plm_rsh_agent "$PWD/scripts/cluster_rsh.sh" --mca btl tcp,self \
#     --mca btl_tcp_if_include 10.250.0.0/24 --mca oob_tcp_if_include 10.250.0.0/24 PROGRAM
set -euo pipefail

prefix=${PROCPOOL_CLUSTER:-ppc}
if [[ ! $prefix =~ ^[a-z0-9]{1,8}$ ]]; then
  echo "cluster.sh: PROCPOOL_CLUSTER must be 1-8 of [a-z0-9], not '$prefix'" >&2
  exit 2
fi
state=/run/procpool-cluster/$prefix
hub=$prefix-hub
subnet=10.250.0
skip_status=77

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

address_of() { echo "$subnet.$((10 + $1))"; }  # K

node_number() {  # NODE -> K, or dies
  [[ $1 =~ ^node([1-9][0-9]?)$ ]] || die "no such node '$1' (node1, node2, ...)"
  [[ -e /run/netns/$prefix-node${BASH_REMATCH[1]} ]] || die "$1 is not up (cluster '$prefix')"
  echo "${BASH_REMATCH[1]}"
}

nodes_up() {  # the K of every node of this prefix, in order
  local f
  for f in /run/netns/"$prefix"-node*; do
    if [[ -e $f && $f =~ -node([0-9]+)$ ]]; then echo "${BASH_REMATCH[1]}"; fi
  done | sort -n
}

init_pid() {  # K -> the pid (here) of the node's init, or nothing if it is gone
  local pid
  pid=$(cat "$state/node$1.init" 2>/dev/null) || return 0
  # The pid may have been reused: the init is the one in the node's network namespace.
  [[ $(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) == "$(stat -L -c %i "/run/netns/$prefix-node$1" 2>/dev/null)" ]] &&
    echo "$pid"
  return 0
}

# Every process in node K's network or pid namespace, but `keep` (pids as seen here).
node_processes() {  # K [keep-pid...]
  local k=$1 init pidns
  shift
  init=$(init_pid "$k")
  {
    ip netns pids "$prefix-node$k" 2>/dev/null || true
    if [[ -n $init ]] && pidns=$(readlink "/proc/$init/ns/pid" 2>/dev/null); then
      pidns=${pidns/[/\\[}
      # A process that ends during the scan makes find fail: not an error here.
      { find /proc/[0-9]*/ns -maxdepth 1 -name pid -lname "${pidns/]/\\]}" 2>/dev/null || true; } | cut -d/ -f3
    fi
  } | sort -un | while read -r p; do
    [[ " $* " == *" $p "* ]] || echo "$p"
  done
}

# SIGKILLs node K's processes (but `keep`) until none is left, for at most 10 s.
kill_node_processes() {  # K [keep-pid...]
  local k=$1 pids i
  shift
  for ((i = 0; i < 200; i++)); do
    pids=$(node_processes "$k" "$@")
    [[ -z $pids ]] && return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.05
  done
  echo "cluster.sh: node$k: still alive after 10 s: $(node_processes "$k" "$@" | tr '\n' ' ')" >&2
  return 1
}

# pid 1 of a node: reaps whatever is orphaned there, sleeps otherwise (no CPU),
# ends on SIGTERM (and with it, the kernel kills every process of the node).
read -r -d '' init_py <<'EOF' || true
import os, signal, sys
signals = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
signal.pthread_sigmask(signal.SIG_BLOCK, signals)
open(sys.argv[1], "w").close()
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    if signal.sigwaitinfo(signals).si_signo != signal.SIGCHLD:
        break
EOF

# Runs in the node's fresh namespaces, as their pid 1 (then execs the init).
read -r -d '' setup_sh <<'EOF' || true
set -e
k=$1 state=$2 python=$3 init_py=$4
hostname "node$k"
mount --bind "$state/hosts" /etc/hosts
mount -t tmpfs -o mode=1777,size=50% "node$k-shm" /dev/shm
mount -t sysfs "node$k-sys" /sys 2>/dev/null || true  # cosmetic: the node's own devices
exec "$python" -c "$init_py" "$state/node$k.ready"
EOF

cmd_up() {
  local n=${1:-3} k i upid init
  [[ $n =~ ^[1-9][0-9]?$ ]] || die "up: N must be 1..99, not '$n'"
  # Whether namespaces can be made here at all: a skip, not a failure.
  if [[ $(id -u) -ne 0 ]]; then
    echo "cluster.sh: skipped: needs root to make network namespaces (uid $(id -u))" >&2
    exit $skip_status
  fi
  local tool why
  for tool in ip nsenter unshare python3; do
    command -v $tool >/dev/null || { echo "cluster.sh: skipped: no '$tool' (iproute2, util-linux, python3)" >&2; exit $skip_status; }
  done
  if ! why=$(unshare --net --uts --mount --pid --fork --mount-proc true 2>&1); then
    echo "cluster.sh: skipped: cannot make namespaces here: ${why//$'\n'/ }" >&2
    exit $skip_status
  fi
  # The system's python starts in 20 ms; a version manager's shim may take a second.
  local python=/usr/bin/python3
  [[ -x $python ]] || python=$(command -v python3)
  if [[ -e /run/netns/$hub || -d $state ]]; then
    die "cluster '$prefix' is up already (cluster.sh down first)"
  fi

  mkdir -p "$state"
  # Whatever a failed `up` made, `down` removes (the veth ends only exist in the hub and the nodes).
  trap 'if (($? != 0)); then echo "cluster.sh: up failed; tearing down" >&2; cmd_down >/dev/null 2>&1 || true; fi' EXIT
  {
    echo "127.0.0.1 localhost"
    echo "::1 localhost ip6-localhost ip6-loopback"
    for ((k = 1; k <= n; k++)); do echo "$(address_of $k) node$k"; done
  } >"$state/hosts"

  # The nodes' way out (cluster_broker.py): from inside a node, cluster.sh
  # commands about other nodes run through it in the machine's namespaces.
  readlink /proc/self/ns/pid >"$state/root.pidns"
  echo "$python" >"$state/python"
  setsid "$python" "$here/cluster_broker.py" serve "$state/broker.sock" "$here/cluster.sh" \
    </dev/null >"$state/broker.log" 2>&1 &
  echo $! >"$state/broker.pid"
  for ((i = 0; i < 200; i++)); do
    [[ -S $state/broker.sock ]] && break
    sleep 0.025
  done
  [[ -S $state/broker.sock ]] || die "the broker did not start: $(cat "$state/broker.log")"

  ip netns add "$hub"
  ip -n "$hub" link add "$prefix-br" type bridge
  ip -n "$hub" link set "$prefix-br" up
  for ((k = 1; k <= n; k++)); do
    ip netns add "$prefix-node$k"
    ip -n "$hub" link add "$prefix-h$k" type veth peer name eth0 netns "$prefix-node$k"
    ip -n "$hub" link set "$prefix-h$k" master "$prefix-br" up
    ip -n "$prefix-node$k" addr add "$(address_of $k)/24" dev eth0
    ip -n "$prefix-node$k" link set eth0 up
    ip -n "$prefix-node$k" link set lo up
    mkdir -p "$state/node$k.tmp"
    chmod 1777 "$state/node$k.tmp"
    # unshare waits for the init (its child) in the root pid namespace; both
    # are in the node's network namespace, so `down` finds both.
    setsid nsenter --net="/run/netns/$prefix-node$k" -- \
      unshare --uts --mount --pid --fork --mount-proc --propagation private -- \
      sh -c "$setup_sh" sh "$k" "$state" "$python" "$init_py" </dev/null >"$state/node$k.log" 2>&1 &
    upid=$!
    echo "$upid" >"$state/node$k.unshare"
    init=
    for ((i = 0; i < 200; i++)); do
      init=$(cat "/proc/$upid/task/$upid/children" 2>/dev/null || true)
      init=${init%% *}
      [[ -n $init && -e $state/node$k.ready ]] && break
      kill -0 "$upid" 2>/dev/null || die "node$k did not start: $(cat "$state/node$k.log")"
      sleep 0.025
    done
    [[ -n $init && -e $state/node$k.ready ]] || die "node$k did not start within 5 s: $(cat "$state/node$k.log")"
    echo "${init// /}" >"$state/node$k.init"
  done
  trap - EXIT
  echo "cluster '$prefix': $n nodes up (node1..node$n at $(address_of 1)..$(address_of "$n"))"
}

cmd_down() {
  local k init status=0
  for k in $(nodes_up); do
    init=$(init_pid "$k")
    # The init's end kills every process of its pid namespace, at once.
    if [[ -n $init ]]; then kill -KILL "$init" 2>/dev/null || true; fi
    kill_node_processes "$k" || status=1
    ip netns del "$prefix-node$k" 2>/dev/null || true
  done
  if [[ -e /run/netns/$hub ]]; then
    local p
    for p in $(ip netns pids "$hub" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$hub" 2>/dev/null || true
  fi
  local broker
  broker=$(cat "$state/broker.pid" 2>/dev/null || true)
  if [[ -n $broker ]] && grep -qF "$state/broker.sock" "/proc/$broker/cmdline" 2>/dev/null; then
    kill -KILL "$broker" 2>/dev/null || true
  fi
  [[ -d $state ]] && rm -rf "$state"
  local left
  left=$(nodes_up | sed "s/^/$prefix-node/")
  [[ -e /run/netns/$hub ]] && left+=" $hub"
  if [[ -n ${left// /} ]]; then
    echo "cluster.sh: down: could not remove: ${left//$'\n'/ }" >&2
    status=1
  fi
  return $status
}

cmd_exec() {
  (($# >= 2)) || die "usage: cluster.sh exec NODE CMD..."
  local k init
  k=$(node_number "$1")
  shift
  init=$(init_pid "$k")
  [[ -n $init ]] || die "node$k's init is gone (cluster.sh kill does not end it; down and up again)"
  # --pid forks: CMD is a process of the node, and so are its children.
  TMPDIR=$state/node$k.tmp exec nsenter --target "$init" --net --uts --mount --pid --wd="$PWD" -- "$@"
}

cmd_status() {
  local k init any=
  for k in $(nodes_up); do
    any=1
    init=$(init_pid "$k")
    local link
    link=$(ip -n "$hub" -o link show "$prefix-h$k" 2>/dev/null | grep -q 'state UP' && echo up || echo down)
    printf 'node%s  %-12s link %-4s  init %-7s  processes %s\n' "$k" "$(address_of "$k")" "$link" \
      "${init:-gone}" "$(node_processes "$k" "$init" "$(cat "$state/node$k.unshare" 2>/dev/null)" | wc -l)"
  done
  [[ -n $any ]] || { echo "cluster '$prefix' is down"; return 1; }
}

cmd_link() {
  if (($# != 2)) || [[ $2 != up && $2 != down ]]; then die "usage: cluster.sh link NODE down|up"; fi
  local k
  k=$(node_number "$1")
  ip -n "$hub" link set "$prefix-h$k" "$2"
}

cmd_kill() {
  (($# == 1 || $# == 2)) || die "usage: cluster.sh kill NODE [NAME]"
  local k p pids i
  k=$(node_number "$1")
  if (($# == 1)); then
    kill_node_processes "$k" "$(init_pid "$k")" "$(cat "$state/node$k.unshare" 2>/dev/null)"
    return
  fi
  # Only the processes named NAME (/proc/PID/comm: an MPI job's ranks), until none is left.
  for ((i = 0; i < 200; i++)); do
    pids=""
    for p in $(node_processes "$k" "$(init_pid "$k")"); do
      [[ $(cat "/proc/$p/comm" 2>/dev/null) == "${2:0:15}" ]] && pids+=" $p"
    done
    [[ -z $pids ]] && return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.05
  done
  die "node$k: processes named $2 still alive after 10 s"
}

cmd_pids() {
  (($# == 1)) || die "usage: cluster.sh pids NODE"
  local k
  k=$(node_number "$1")
  node_processes "$k" "$(init_pid "$k")" "$(cat "$state/node$k.unshare" 2>/dev/null)"
}

here=$(dirname "$(readlink -f "$0")")
# Inside a node (another pid namespace than the one `up` ran in): the other
# nodes' processes cannot be seen nor started from here; the broker runs the
# command outside, with this process's stdin, stdout, stderr and environment.
if [[ -f $state/root.pidns && $(readlink /proc/self/ns/pid) != "$(cat "$state/root.pidns")" ]]; then
  exec "$(cat "$state/python")" "$here/cluster_broker.py" call "$state/broker.sock" "$@"
fi

command=${1:-}
(($# > 0)) && shift
case $command in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  exec) cmd_exec "$@" ;;
  status) cmd_status ;;
  link) cmd_link "$@" ;;
  kill) cmd_kill "$@" ;;
  pids) cmd_pids "$@" ;;
  *)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
