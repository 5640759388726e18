#!/usr/bin/env bash
# Installs, on a fresh Debian machine, everything the test suite needs.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in git tmux; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
