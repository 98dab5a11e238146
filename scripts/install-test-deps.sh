#!/usr/bin/env bash
# Installs the programs the integration tests run inside the sandbox, from Debian's
# packages, when they are missing. Safe to run repeatedly; needs root (or sudo) only
# when something is missing.
set -euo pipefail
need=()
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v git >/dev/null || need+=(git)
[ -x /usr/bin/python3 ] || need+=(python3)
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
command -v strace >/dev/null || need+=(strace)
command -v setpriv >/dev/null || need+=(util-linux)
command -v script >/dev/null || need+=(bsdutils)
command -v ipcmk >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
