#!/usr/bin/env bash
# Installs every Debian package childflow needs to build, test and benchmark.
# Safe to run again: apt-get skips what is present; the update runs only when
# a package is missing.
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake ninja-build pkg-config
  libtomlplusplus-dev nlohmann-json3-dev libfmt-dev
  libnl-3-dev libnl-route-3-dev libnftables-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
LAB_PKGS=(
  iproute2 iputils-ping traceroute curl python3 openssl uidmap procps
  dnsmasq tinyproxy microsocks dante-server socat tshark
  iperf3 sockperf wrk slirp4netns passt nmap bind9-dnsutils dnsperf jq util-linux psmisc
)
FUZZ_PKGS=(clang libclang-rt-14-dev)

want=("${BUILD_PKGS[@]}" "${LAB_PKGS[@]}")
if [[ "${CHILDFLOW_FUZZ:-0}" == 1 ]]; then want+=("${FUZZ_PKGS[@]}"); fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Lab daemons are started by the test harness only; stop any that the package
# scripts started so they do not hold ports on the host.
for svc in dnsmasq tinyproxy danted; do
  $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  $SUDO pkill -x "$svc" >/dev/null 2>&1 || true
done
echo "install-deps: done"
