#!/usr/bin/env bash
# Open MPI's rsh agent for the simulated cluster (scripts/cluster.sh):
#   mpirun --mca plm_rsh_agent /abs/path/scripts/cluster_rsh.sh --host node1:1,node2:1 ...
# Open MPI calls it as ssh: [options] HOST COMMAND-WORDS...; like ssh, it
# joins the words into one command line for a shell on HOST (Open MPI quotes
# for that shell), here /bin/sh inside HOST's namespaces. The cluster's prefix
# comes from PROCPOOL_CLUSTER, which mpirun's environment carries here.
set -euo pipefail
while [[ ${1:-} == -* ]]; do
  case $1 in
    -l | -p | -o | -i | -F) shift 2 ;;  # ssh options with a value: meaningless here
    *) shift ;;
  esac
done
if (($# < 2)); then
  echo "cluster_rsh.sh: usage: cluster_rsh.sh HOST COMMAND..." >&2
  exit 255
fi
host=$1
shift
exec "$(dirname "$(readlink -f "$0")")/cluster.sh" exec "$host" /bin/sh -c "$*"
