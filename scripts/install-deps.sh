#!/usr/bin/env bash
# Installs the system packages scanq needs when they are missing (Debian/Ubuntu).
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v nmap >/dev/null || need+=(nmap)
command -v curl >/dev/null || need+=(curl)
command -v ndiff >/dev/null || need+=(ndiff)
command -v openssl >/dev/null || need+=(openssl)
# Recording the system calls of nmap for its seccomp allow-list (worker/tests/seccomp_nmap.rs).
command -v strace >/dev/null || need+=(strace)
# Egress confinement of tool runs (docs/sandbox.md).
[ -x /usr/sbin/nft ] || command -v nft >/dev/null || need+=(nftables)
[ -x /usr/sbin/ip ] || command -v ip >/dev/null || need+=(iproute2)
command -v npm >/dev/null || need+=(nodejs npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# Headless Chromium and its driver for the dashboard test (tests/dashboard.rs).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# The second load generator of `scanq-bench --reads` (bench/src/reads.rs), next to its own.
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "Installing: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
