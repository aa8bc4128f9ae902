#!/usr/bin/env bash
# The whole ferrolb test suite: formatting, lints, unit and property tests, and the end-to-end suite
# against the lab. Installs what it needs first, so it also works on a fresh Debian/Ubuntu machine (root).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

step "prerequisites (Debian packages for the build and the lab, installed when missing)"
./tests/install-prerequisites.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "lab control plane and Helm: kube-apiserver, etcd and helm (built from pinned Go modules once, then cached)"
./tests/build-control-plane.sh

step "cargo test"
cargo test --workspace --locked
