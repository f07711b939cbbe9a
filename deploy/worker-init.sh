#!/bin/sh
# scanq-worker-init: how the worker container starts (docker-compose.yml, deploy/k8s/worker.yaml;
# docs/sandbox.md "Deployment"). It runs as root with only the capabilities those files list.
#
# Container runtimes mount the cgroup tree and /proc/sys read-only in an unprivileged container.
# Confinement needs two writable views, and this makes exactly those writable, in the
# container's own mount namespace:
#   /sys/fs/cgroup  a cgroup v2 per tool run, killed whole at the end. Only in a private cgroup
#                   namespace (compose `cgroup: private`; the default on cgroup v2 hosts), where
#                   the tree shown is the container's own subtree, never the host's.
#   /proc/sys/net   per-run network settings. It shows the namespaces of the reading process
#                   (this container's, and the runs'); the rest of /proc/sys (kernel.*, vm.*,
#                   host-wide) stays read-only.
# and sets net.ipv4.ip_forward=1 in the container (raw scans of other hosts are routed from the
# run's namespace). Then it becomes scanq-worker, which refuses to start
# (SCANQ_EGRESS_CONFINEMENT=required) when confinement still cannot be set up, naming why.
set -eu

say() { echo "scanq-worker-init: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  say "not root (uid $(id -u)): nothing to prepare; see docs/sandbox.md \"Deployment\""
  exec scanq-worker "$@"
fi

read_only() { # is the mount at $1 read-only?
  awk -v m="$1" '$2 == m { split($4, o, ","); ro = (o[1] == "ro") } END { exit !ro }' /proc/mounts
}

cgroup=/sys/fs/cgroup
if ! awk -v m="$cgroup" '$2 == m && $3 == "cgroup2" { found = 1 } END { exit !found }' /proc/mounts; then
  say "$cgroup is not cgroup v2: runs get no cgroup of their own"
elif ! grep -qx '0::/' /proc/self/cgroup; then
  say "not in a private cgroup namespace ($(grep '^0::' /proc/self/cgroup)): $cgroup left as it is"
elif read_only "$cgroup"; then
  mount -o remount,bind,rw "$cgroup" ||
    say "cannot make $cgroup writable (CAP_SYS_ADMIN, and AppArmor allowing mount?)"
fi

net=/proc/sys/net
if [ ! -w "$net/ipv4/ip_forward" ]; then
  { mount --bind "$net" "$net" && mount -o remount,bind,rw "$net"; } ||
    say "cannot make $net writable (CAP_SYS_ADMIN, and AppArmor allowing mount?)"
fi
if [ -w "$net/ipv4/ip_forward" ] && [ "$(cat "$net/ipv4/ip_forward")" != 1 ]; then
  echo 1 >"$net/ipv4/ip_forward"
fi

exec scanq-worker "$@"
