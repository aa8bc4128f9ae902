#!/usr/bin/env bash
# Installs the lab's Debian packages, and make for the speaker's build (tikv-jemalloc-sys builds
# jemalloc with it), when any of their programs is missing (root; apt never starts the daemons
# here, the lab runs them in its own namespaces). Used by tests/lab.sh and tests/test.sh.
set -euo pipefail

packages=(iproute2 iputils-ping iputils-arping ndisc6 tcpdump tshark bird2 frr gobgpd nftables curl
  ca-certificates make)
# One program per package that proves it is installed.
programs=(ip ping arping ndisc6 tcpdump tshark bird /usr/lib/frr/bgpd gobgpd nft curl make)

missing=()
for program in "${programs[@]}"; do
  if [[ $program == /* ]]; then
    [ -x "$program" ] || missing+=("$program")
  else
    command -v "$program" >/dev/null 2>&1 || missing+=("$program")
  fi
done
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-prerequisites: missing ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "install-prerequisites: missing ${missing[*]}: installing ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
