#!/usr/bin/env bash
# guest-engine.sh BUILD_DIR [VAR=VALUE...] [TEST...] : runs inside the 6.1
# guest (through tests/oldkernel/oldkernel.sh) the engine's end-to-end tests
# against the childflow binary in BUILD_DIR, with the kernel's own paths (no
# forced fallback). VAR=VALUE settings are exported to the tests (the guest
# does not inherit the host's environment), e.g. BULK_MB=50. TEST names
# scripts of tests/e2e without .sh; default: every engine_*.sh. Prints one
# "ok"/"FAIL"/"skip" line per script and a closing "N passed, N failed" line;
# exits non-zero when any failed.
set -uo pipefail
[[ "$(uname -r)" == 6.1.* ]] || { echo "guest-engine.sh: expected a 6.1 guest, got $(uname -r)" >&2; exit 2; }
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: guest-engine.sh BUILD_DIR [TEST...]}
[[ $build == /* ]] || build=$src/$build
shift
tests=()
for a in "$@"; do
  if [[ $a =~ ^[A-Z_][A-Z0-9_]*= ]]; then export "${a?}"; else tests+=("$a"); fi
done
if ((${#tests[@]} == 0)); then
  for t in "$src"/tests/e2e/engine_*.sh; do tests+=("$(basename "$t" .sh)"); done
fi
export CHILDFLOW=$build/childflow CHILDFLOW_SOURCE_DIR=$src
unset CHILDFLOW_FORCE_FALLBACK
# The guest is emulated (4 to 40 times slower): engine_loss moves 100 MB
# each way here unless told otherwise.
export LOSS_MB=${LOSS_MB:-100}
# Time limits of the engine tests stretch by this factor here, and bulk
# transfers get more time (their sha256 is what matters).
export ENGINE_TIME_SCALE=${ENGINE_TIME_SCALE:-4} BULK_MAX_TIME=${BULK_MAX_TIME:-300}
echo "# kernel $(uname -r); childflow $CHILDFLOW"
"$CHILDFLOW" --doctor | grep "kernel feature" || true
pass=0 fail=0 skip=0
for t in "${tests[@]}"; do
  start=$(date +%s)
  rc=0
  bash "$src/tests/e2e/$t.sh" >"/tmp/oldkernel-$t.log" 2>&1 || rc=$?
  if ((rc == 0)); then
    pass=$((pass + 1)); echo "ok - $t ($(( $(date +%s) - start )) s)"
  elif ((rc == 77)); then
    skip=$((skip + 1)); echo "skip - $t: $(grep -m1 '^skip:' "/tmp/oldkernel-$t.log")"
  else
    fail=$((fail + 1)); echo "FAIL: $t ($(( $(date +%s) - start )) s); its failed checks, then its log's end:"
    grep '^FAIL' "/tmp/oldkernel-$t.log" | sed 's/^/    /' | head -n 40
    sed 's/^/    /' "/tmp/oldkernel-$t.log" | tail -n 60
  fi
  grep -E "^(ok -|FAIL:|# rate)" "/tmp/oldkernel-$t.log" | sed 's/^/    /' | head -n 80
done
echo "oldkernel: $pass passed, $fail failed, $skip skipped"
((fail == 0))
