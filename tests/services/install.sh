#!/usr/bin/env bash
# Installs, on a fresh Debian bookworm machine (as root), everything the test suite needs:
# Debian packages for dockerd, the registry, Prometheus, Alertmanager and debootstrap; the Kubernetes
# control plane built from Go modules; the Python base image root filesystem; chromium
# for the browser test.
# Idempotent: every step is skipped when its result is already present, so a second run
# takes about a second. Services are not started here; the pytest fixtures start them.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

log() { printf '[install %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

packages=(git tmux make python3 python3-venv docker.io docker-registry prometheus
  prometheus-alertmanager debootstrap chromium
  openssl iproute2 procps psmisc util-linux ca-certificates curl)
need=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  # The packages' maintainer scripts would start dockerd, the registry and Prometheus as
  # system services on their default ports; the tests run their own instances instead.
  policy=/usr/sbin/policy-rc.d
  restore_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    restore_policy=1
  fi
  trap '[[ -n $restore_policy ]] && rm -f "$policy"' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [[ -n $restore_policy ]] && rm -f "$policy"
  restore_policy=
  # Stop anything that started anyway (hosts with systemd ignore policy-rc.d).
  if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    for unit in docker.socket docker.service docker-registry.service prometheus.service \
      prometheus-alertmanager.service prometheus-node-exporter.service; do
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
  fi
else
  log "Debian packages present"
fi

if [[ ! -x /usr/local/go/bin/go ]] && ! command -v go >/dev/null; then
  log "no Go toolchain found: the Kubernetes control plane cannot be built" >&2
  exit 1
fi
export PATH=$PATH:/usr/local/go/bin
bash "$here/build_k8s.sh"

cd "$root"
python3 -m tests.services prepare
log "done"
