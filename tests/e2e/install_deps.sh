#!/usr/bin/env bash
# scripts/install-deps.sh does no harm: with apt-get, dpkg-query, systemctl,
# service and pkill replaced by stubs that only record their calls, it
#   - installs only the missing packages of the purposes asked for (building
#     pulls in no lab or benchmark tool);
#   - stops and disables only the services whose packages it just installed,
#     never one the machine already had;
#   - never kills a process by name;
#   - rejects an unknown purpose with exit 2.
set -euo pipefail
SRC=${CHILDFLOW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
pass() { echo "ok - $1"; }
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }

mkdir "$work/bin"
# dpkg-query: the packages in $work/present are installed.
cat >"$work/bin/dpkg-query" <<'STUB'
#!/bin/bash
pkg=${!#}
grep -qx "$pkg" "$STUB_DIR/present" && echo "install ok installed" || exit 1
STUB
for tool in systemctl service pkill killall; do
  printf '#!/bin/bash\necho "%s $*" >>"$STUB_DIR/calls"\n' "$tool" >"$work/bin/$tool"
done
# sudo runs the (stubbed) command, so non-root runs record the same calls.
printf '#!/bin/bash\n"$@"\n' >"$work/bin/sudo"
# apt-get records whether the policy-rc.d that refuses service starts is in
# place while it installs; STUB_APT_FAIL makes the install fail.
cat >"$work/bin/apt-get" <<'STUB'
#!/bin/bash
echo "apt-get $*" >>"$STUB_DIR/calls"
if [[ $1 == install ]]; then
  if [[ -x $CHILDFLOW_POLICY_RC_D ]] && "$CHILDFLOW_POLICY_RC_D"; [[ $? == 101 ]]; then
    echo "policy-rc.d refuses starts" >>"$STUB_DIR/calls"
  fi
  # The packages are now installed (as dpkg-query will say).
  for p in "${@:2}"; do [[ $p == -* ]] || echo "$p" >>"$STUB_DIR/present"; done
  [[ -n ${STUB_APT_FAIL:-} ]] && exit 100
fi
exit 0
STUB
chmod +x "$work/bin/"*

run() {  # run PURPOSE... : with the stubs; output in $work/out, exit code in $rc
  : >"$work/calls"
  rc=0
  STUB_DIR=$work CHILDFLOW_POLICY_RC_D=$work/policy-rc.d PATH="$work/bin:$PATH" \
    bash "$SRC/scripts/install-deps.sh" "$@" >"$work/out" 2>&1 || rc=$?
}

# Everything for building is present, and dnsmasq too (the user's).
bash -c "source <(sed -n '/^BUILD_PKGS=(/,/^)/p' '$SRC/scripts/install-deps.sh'); printf '%s\n' \"\${BUILD_PKGS[@]}\"" >"$work/present"
echo dnsmasq >>"$work/present"
run build
if [[ $rc == 0 && ! -s $work/calls ]]; then pass "build: all present, nothing installed or stopped"; else fail "build: rc $rc, calls: $(cat "$work/calls")"; fi

run build lab
install_line=$(grep '^apt-get install' "$work/calls" || true)
if [[ -n $install_line ]]; then pass "build lab: installs the missing lab packages"; else fail "build lab: no apt-get install: $(cat "$work/calls")"; fi
for p in tinyproxy dante-server tshark nmap iperf3; do
  if [[ " $install_line " == *" $p "* ]]; then pass "lab installs $p"; else fail "lab does not install $p: $install_line"; fi
done
if [[ " $install_line " != *" dnsmasq "* ]]; then pass "dnsmasq, already present, is not reinstalled"; else fail "dnsmasq reinstalled"; fi
if grep -q 'systemctl disable --now tinyproxy' "$work/calls" && grep -q 'systemctl disable --now danted' "$work/calls"; then
  pass "the services of packages this run installed are stopped and disabled"
else
  fail "tinyproxy/danted not stopped: $(cat "$work/calls")"
fi
if ! grep -q 'dnsmasq' <(grep -E '^(systemctl|service)' "$work/calls"); then
  pass "the user's own dnsmasq service is left alone"
else
  fail "the user's dnsmasq was touched: $(cat "$work/calls")"
fi
if ! grep -qE '^(pkill|killall)' "$work/calls"; then pass "no process is killed by name"; else fail "killed by name: $(cat "$work/calls")"; fi
if grep -q 'policy-rc.d refuses starts' "$work/calls"; then pass "no service may start while apt-get installs"; else fail "no policy-rc.d during the install"; fi
if [[ ! -e $work/policy-rc.d ]]; then pass "the policy-rc.d it made is gone afterwards"; else fail "policy-rc.d left behind"; fi

# An install that fails half way still disables what it installed and
# removes its policy-rc.d.
sed -i '/^tinyproxy$/d; /^dante-server$/d' "$work/present"
STUB_APT_FAIL=1 run build lab
if [[ $rc != 0 ]] && grep -q 'systemctl disable --now tinyproxy' "$work/calls" && [[ ! -e $work/policy-rc.d ]]; then
  pass "a failed install: exit non-zero, its services disabled, policy-rc.d removed"
else
  fail "a failed install: rc $rc, calls: $(cat "$work/calls")"
fi
# A policy-rc.d the machine already has is left exactly as it was.
printf '#!/bin/sh\nexit 0\n' >"$work/policy-rc.d"; chmod 755 "$work/policy-rc.d"
sed -i '/^tinyproxy$/d' "$work/present"
run build lab
if [[ "$(cat "$work/policy-rc.d")" == $'#!/bin/sh\nexit 0' ]]; then pass "an existing policy-rc.d is left alone"; else fail "the machine's policy-rc.d was changed"; fi
rm -f "$work/policy-rc.d"

# Building alone never pulls in the lab or the benchmark.
sed -i '/^build-essential$/d' "$work/present"
run build
install_line=$(grep '^apt-get install' "$work/calls" || true)
if [[ $install_line == *build-essential* ]]; then pass "build installs a missing build package"; else fail "build: $install_line"; fi
for p in tshark nmap iperf3 dnsmasq tinyproxy sockperf wrk; do
  if [[ " $install_line " != *" $p "* ]]; then pass "build does not pull in $p"; else fail "build pulls in $p"; fi
done
if ! grep -qE '^(systemctl|service|pkill)' "$work/calls"; then pass "build stops no service"; else fail "build: $(cat "$work/calls")"; fi

run nonsense
if [[ $rc == 2 ]] && grep -q 'unknown purpose `nonsense`' "$work/out"; then pass "an unknown purpose: exit 2 with a message"; else fail "unknown purpose: rc $rc: $(cat "$work/out")"; fi

echo "# $failures failed"
((failures == 0))
