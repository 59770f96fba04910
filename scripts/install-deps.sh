#!/usr/bin/env bash
# install-deps.sh [build|lab|bench|fuzz]... : installs the Debian packages
# that childflow needs for each purpose (default: build).
#
#   build  compile childflow and its unit tests
#   lab    the end-to-end tests: the lab's servers, proxies and clients
#          (tests/lab), the shells and man tools the package test uses, and
#          the headless browser that renders `--report-format html`
#   bench  the peers and load generators of bench/ (pasta, slirp4netns, ...)
#   fuzz   clang and libFuzzer
#
# It does no harm to the machine it runs on:
#   - it installs only what is missing, and runs `apt-get update` only then;
#   - the lab runs its own dnsmasq, tinyproxy and danted inside network
#     namespaces, so a service that one of *those packages* would start on
#     install would only hold ports on the host (dnsmasq on :53, next to
#     libvirt's, NetworkManager's or systemd-resolved). While apt-get runs, a
#     policy-rc.d that refuses every start keeps them from starting at all
#     (only if the machine has no policy-rc.d of its own; removed afterwards,
#     also when apt-get fails). It also keeps apt from restarting services
#     it upgrades as dependencies: they go on running, untouched;
#   - afterwards it disables the services of the packages this very run
#     installed, so they do not start at boot either. Services the user
#     already had are never touched, and no process is ever killed by name.
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake ninja-build pkg-config
  libtomlplusplus-dev nlohmann-json3-dev libfmt-dev
  libnl-3-dev libnl-route-3-dev libnftables-dev libseccomp-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dpkg-dev file
)
LAB_PKGS=(
  iproute2 iputils-ping traceroute curl python3 openssl uidmap procps
  dnsmasq tinyproxy microsocks dante-server socat tshark
  nftables nmap bind9-dnsutils jq util-linux psmisc iperf3 openssh-client openssh-server git
  zsh fish bash-completion groff-base man-db
  chromium
)
BENCH_PKGS=(sockperf wrk slirp4netns passt dnsperf)
FUZZ_PKGS=(clang libclang-rt-14-dev)

# package -> the service its maintainer scripts may start
declare -A SERVICE_OF=([dnsmasq]=dnsmasq [tinyproxy]=tinyproxy [dante-server]=danted
  [openssh-server]=ssh)

want=()
(($# == 0)) && set -- build
for purpose in "$@"; do
  case $purpose in
    build) want+=("${BUILD_PKGS[@]}") ;;
    lab) want+=("${LAB_PKGS[@]}") ;;
    bench) want+=("${BENCH_PKGS[@]}") ;;
    fuzz) want+=("${FUZZ_PKGS[@]}") ;;
    *) echo "install-deps: unknown purpose \`$purpose\`: use build, lab, bench or fuzz" >&2; exit 2 ;;
  esac
done

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in "${want[@]}"; do
  installed "$p" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps ($*): all ${#want[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
POLICY_RC_D=${CHILDFLOW_POLICY_RC_D:-/usr/sbin/policy-rc.d}  # tests point it elsewhere
made_policy=false
finish() {
  for p in "${missing[@]}"; do
    svc=${SERVICE_OF[$p]:-}
    [[ -n $svc ]] && installed "$p" || continue
    echo "install-deps: $p was just installed: disabling its $svc service (the lab runs its own)"
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 ||
      $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
  if $made_policy; then $SUDO rm -f "$POLICY_RC_D"; fi
}
trap finish EXIT
if [[ ! -e $POLICY_RC_D ]]; then
  printf '#!/bin/sh\n# install-deps.sh (childflow): no service starts while it installs\nexit 101\n' |
    $SUDO tee "$POLICY_RC_D" >/dev/null
  $SUDO chmod 0755 "$POLICY_RC_D"
  made_policy=true
fi
echo "install-deps ($*): installing ${missing[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
