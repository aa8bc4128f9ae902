#!/usr/bin/env bash
# Builds the lab's real control plane — kube-apiserver and etcd — and the Helm CLI that installs ferrolb's
# chart into it, from pinned Go module versions with the machine's Go toolchain, and caches the binaries
# by version:
#   ${FERROLB_CACHE:-$HOME/.cache/ferrolb}/bin/kube-apiserver-<version>
#   ${FERROLB_CACHE:-$HOME/.cache/ferrolb}/bin/etcd-<version>
#   ${FERROLB_CACHE:-$HOME/.cache/ferrolb}/bin/helm-<version>
# A warm cache never rebuilds. Versions come from tests/versions.env only.
#
# Why a throwaway module: k8s.io/kubernetes is not meant to be consumed as a module. Its go.mod requires the
# staging modules (k8s.io/api, k8s.io/client-go, …) at v0.0.0 and replaces them with ./staging paths that
# do not exist in the module zip. A consumer module must replace each of them with the published v0.Y.Z,
# so the replace list is generated from Kubernetes' own go.mod rather than written by hand.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"
: "${KUBERNETES_VERSION:?missing in versions.env}" "${ETCD_VERSION:?missing in versions.env}"
: "${HELM_VERSION:?missing in versions.env}"

cache="${FERROLB_CACHE:-${HOME:?set HOME or FERROLB_CACHE}/.cache/ferrolb}"
bin_dir="$cache/bin"
mkdir -p "$bin_dir"

log() { printf 'build-control-plane: %s\n' "$*" >&2; }

# One builder at a time: test.sh and lab.sh may run concurrently on a fresh machine; the second
# finds the binaries cached once it gets the lock.
exec 9>"$cache/.build.lock"
flock 9

# Everything below is only needed when a binary is missing: a warm cache needs neither Go nor network.
prepared=""
prepare_build() {
  [ -z "$prepared" ] || return 0
  prepared=1
  # The official Go tarball installs to /usr/local/go; non-login shells often lack it on PATH.
  command -v go >/dev/null 2>&1 || [ ! -x /usr/local/go/bin/go ] || PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null 2>&1 || { log "Go toolchain not found (need go >= 1.25 on PATH)"; exit 1; }
  work="$(mktemp -d "${TMPDIR:-/tmp}/ferrolb-cp-build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  # The checksum database is an integrity check on downloads; when it cannot be reached (sandboxed
  # machines), it is disabled for these throwaway modules only — the variables are exported inside
  # this script alone.
  local sumdb sumdb_host
  sumdb="$(go env GOSUMDB)"
  if [ "$sumdb" != off ]; then
    sumdb_host="${sumdb%% *}"
    sumdb_host="${sumdb_host%%+*}"
    if ! curl -fsS --max-time 10 -o /dev/null "https://$sumdb_host/latest" 2>/dev/null; then
      log "checksum database $sumdb_host unreachable: GOSUMDB=off for the throwaway build modules"
      export GOSUMDB=off
    fi
  fi
  export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
  export CGO_ENABLED=0
}

# new_module DIR NAME: an empty throwaway module whose tools.go imports the main package (build tag
# `tools` keeps it out of normal builds while `go mod tidy` still sees the import).
new_module() {
  mkdir -p "$1"
  (cd "$1" && go mod init "ferrolb.invalid/$2" >/dev/null 2>&1)
}

install_binary() { # install_binary SRC NAME-VERSION
  chmod 0755 "$1"
  mv -f "$1" "$bin_dir/$2"
  log "cached $bin_dir/$2"
}

build_kube_apiserver() {
  local target="kube-apiserver-$KUBERNETES_VERSION"
  if [ -x "$bin_dir/$target" ]; then log "cached: $target"; return; fi
  prepare_build
  log "building $target (cold: several minutes on 2 cores)"
  local dir="$work/kube-apiserver" started=$SECONDS
  new_module "$dir" kube-apiserver
  cd "$dir"
  local gomod staging_version
  gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p')"
  [ -f "$gomod" ] || { log "go mod download gave no go.mod for k8s.io/kubernetes@$KUBERNETES_VERSION"; exit 1; }
  # Staging modules are published as v0.<minor>.<patch> for Kubernetes v1.<minor>.<patch>.
  staging_version="v0.${KUBERNETES_VERSION#v1.}"
  local staging
  staging="$(awk '
    /^require[[:space:]]*\(/ { block = 1; next }
    block && /^\)/ { block = 0; next }
    block && $2 == "v0.0.0" { print $1; next }
    /^require[[:space:]]/ && $3 == "v0.0.0" { print $2 }
  ' "$gomod")"
  [ -n "$staging" ] || { log "no v0.0.0 staging modules found in $gomod"; exit 1; }
  go mod edit -require="k8s.io/kubernetes@$KUBERNETES_VERSION"
  local module
  for module in $staging; do
    go mod edit -replace="$module=$module@$staging_version"
  done
  log "replaced $(wc -w <<<"$staging") staging modules with $staging_version"
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >tools.go
  go mod tidy
  # What Kubernetes' own build stamps (hack/lib/version.sh): /version then reports the real release.
  local minor="${KUBERNETES_VERSION#v1.}" pkg ldflags=""
  minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  go build -trimpath -ldflags="$ldflags" -o "$dir/out" k8s.io/kubernetes/cmd/kube-apiserver
  install_binary "$dir/out" "$target"
  log "$target built in $((SECONDS - started)) s"
}

build_etcd() {
  local target="etcd-$ETCD_VERSION"
  if [ -x "$bin_dir/$target" ]; then log "cached: $target"; return; fi
  prepare_build
  log "building $target"
  local dir="$work/etcd" started=$SECONDS
  new_module "$dir" etcd
  cd "$dir"
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
  go mod tidy
  go build -trimpath -o "$dir/out" go.etcd.io/etcd/server/v3
  install_binary "$dir/out" "$target"
  log "$target built in $((SECONDS - started)) s"
}

# Helm's go.mod has no replace directives, so its command builds straight from the module; the
# ldflags stamp what its Makefile stamps for a release, so `helm version` reports the pinned tag.
build_helm() {
  local target="helm-$HELM_VERSION"
  if [ -x "$bin_dir/$target" ]; then log "cached: $target"; return; fi
  prepare_build
  log "building $target"
  local dir="$work/helm" started=$SECONDS major="${HELM_VERSION%%.*}"
  new_module "$dir" helm
  cd "$dir"
  go mod edit -require="helm.sh/helm/$major@$HELM_VERSION"
  printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/%s/cmd/helm"\n' "$major" >tools.go
  go mod tidy
  local pkg="helm.sh/helm/$major/internal/version"
  go build -trimpath -ldflags="-w -s -X $pkg.version=$HELM_VERSION -X $pkg.gitTreeState=clean" \
    -o "$dir/out" "helm.sh/helm/$major/cmd/helm"
  install_binary "$dir/out" "$target"
  log "$target built in $((SECONDS - started)) s"
}

build_etcd
build_kube_apiserver
build_helm
