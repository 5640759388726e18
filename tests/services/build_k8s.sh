#!/usr/bin/env bash
# Builds the Kubernetes control plane used by the integration tests from Go modules:
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (k8s.io/kubernetes),
# etcd (go.etcd.io/etcd/server/v3) and kwok (sigs.k8s.io/kwok) plus kwok's stage definitions.
#
# k8s.io/kubernetes requires its staging modules at v0.0.0, which no module proxy serves,
# so each piece is built from a small wrapper module that pins the published versions.
# Each piece lives in its own wrapper so their dependency graphs do not pull on each other.
#
# Binaries are cached by version under $MRC_CACHE_DIR (default ~/.cache/mrc) and a piece is
# skipped when its binaries are already there. Safe to run concurrently (flock).
#
# Usage: build_k8s.sh [--print-dirs]
set -euo pipefail

K8S_VERSION=${MRC_K8S_VERSION:-1.36.3}
ETCD_VERSION=${MRC_ETCD_VERSION:-3.6.16}
KWOK_VERSION=${MRC_KWOK_VERSION:-0.8.0}
CACHE=${MRC_CACHE_DIR:-$HOME/.cache/mrc}

K8S_DIR=$CACHE/k8s-v$K8S_VERSION
ETCD_DIR=$CACHE/etcd-v$ETCD_VERSION
KWOK_DIR=$CACHE/kwok-v$KWOK_VERSION

if [[ ${1:-} == --print-dirs ]]; then
  printf 'K8S_DIR=%s\nETCD_DIR=%s\nKWOK_DIR=%s\n' "$K8S_DIR" "$ETCD_DIR" "$KWOK_DIR"
  exit 0
fi

STAGING=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
  cloud-provider cluster-bootstrap code-generator component-base component-helpers
  controller-manager cri-api cri-client cri-streaming csi-translation-lib
  dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
  kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils
  pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming)

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
NICE=(nice -n 19)
command -v ionice >/dev/null && NICE+=(ionice -c 3)

mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
flock 9

log() { printf '[build_k8s %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Writes a wrapper module in $1 whose tools.go imports the given main packages.
write_wrapper() {
  local dir=$1 module=$2
  shift 2
  mkdir -p "$dir"
  {
    echo "module $module"
    echo
    echo "go $("$GO" env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')"
  } >"$dir/go.mod"
  {
    echo '//go:build tools'
    echo
    echo 'package tools'
    echo
    echo 'import ('
    for pkg in "$@"; do echo "	_ \"$pkg\""; done
    echo ')'
  } >"$dir/tools.go"
}

build_k8s() {
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local missing=0
  for b in "${bins[@]}"; do [[ -x $K8S_DIR/bin/$b ]] || missing=1; done
  ((missing)) || { log "kubernetes v$K8S_VERSION present in $K8S_DIR"; return 0; }
  log "building kubernetes v$K8S_VERSION"
  local work
  work=$(mktemp -d "$CACHE/k8s-build.XXXXXX")
  local pkgs=()
  for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  write_wrapper "$work" mrc.local/k8sbuild "${pkgs[@]}"
  (
    cd "$work"
    local minor=${K8S_VERSION#*.}
    minor=${minor%%.*}
    "$GO" mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
    for m in "${STAGING[@]}"; do
      "$GO" mod edit -replace="k8s.io/$m=k8s.io/$m@v0.$minor.${K8S_VERSION##*.}"
    done
    "${NICE[@]}" "$GO" mod tidy
    local date
    date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    local ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
      ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
    done
    mkdir -p out
    "${NICE[@]}" "$GO" build -trimpath -ldflags "$ld" -o out/ "${pkgs[@]}"
  )
  mkdir -p "$K8S_DIR"
  rm -rf "$K8S_DIR/bin"
  mv "$work/out" "$K8S_DIR/bin"
  rm -rf "$work"
  log "kubernetes v$K8S_VERSION built into $K8S_DIR/bin"
}

build_etcd() {
  [[ -x $ETCD_DIR/bin/etcd ]] && { log "etcd v$ETCD_VERSION present in $ETCD_DIR"; return 0; }
  log "building etcd v$ETCD_VERSION"
  local work
  work=$(mktemp -d "$CACHE/etcd-build.XXXXXX")
  write_wrapper "$work" mrc.local/etcdbuild go.etcd.io/etcd/server/v3
  (
    cd "$work"
    "$GO" mod edit -require="go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    "${NICE[@]}" "$GO" mod tidy
    mkdir -p out
    "${NICE[@]}" "$GO" build -trimpath -ldflags "-s -w" -o out/etcd go.etcd.io/etcd/server/v3
  )
  mkdir -p "$ETCD_DIR"
  rm -rf "$ETCD_DIR/bin"
  mv "$work/out" "$ETCD_DIR/bin"
  rm -rf "$work"
  log "etcd v$ETCD_VERSION built into $ETCD_DIR/bin"
}

build_kwok() {
  [[ -x $KWOK_DIR/bin/kwok && -s $KWOK_DIR/stages.yaml ]] && {
    log "kwok v$KWOK_VERSION present in $KWOK_DIR"
    return 0
  }
  log "building kwok v$KWOK_VERSION"
  local work
  work=$(mktemp -d "$CACHE/kwok-build.XXXXXX")
  write_wrapper "$work" mrc.local/kwokbuild sigs.k8s.io/kwok/cmd/kwok
  (
    cd "$work"
    "$GO" mod edit -require="sigs.k8s.io/kwok@v$KWOK_VERSION"
    "${NICE[@]}" "$GO" mod tidy
    mkdir -p out
    "${NICE[@]}" "$GO" build -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION" \
      -o out/kwok sigs.k8s.io/kwok/cmd/kwok
    local src
    src=$("$GO" list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
    local stage=$src/kustomize/stage
    for f in node/fast/node-initialize.yaml \
      node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      [[ -s $stage/$f ]] || { log "missing kwok stage $stage/$f"; exit 1; }
      printf -- '---\n'
      cat "$stage/$f"
      echo
    done >out/stages.yaml
  )
  mkdir -p "$KWOK_DIR"
  rm -rf "$KWOK_DIR/bin"
  mv "$work/out/stages.yaml" "$KWOK_DIR/stages.yaml"
  mv "$work/out" "$KWOK_DIR/bin"
  rm -rf "$work"
  log "kwok v$KWOK_VERSION built into $KWOK_DIR"
}

# Small pieces first: kwok and etcd are needed alongside and take minutes, not tens of minutes.
build_etcd
build_kwok
build_k8s
