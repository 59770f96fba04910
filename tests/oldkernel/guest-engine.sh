#!/usr/bin/env bash
# guest-engine.sh BUILD_DIR [TEST...] : runs inside the 6.1 guest (through
# tests/oldkernel/oldkernel.sh) the engine's end-to-end tests against the
# childflow binary in BUILD_DIR, with the kernel's own paths (no forced
# fallback). TEST names scripts of tests/e2e without .sh; default: every
# engine_*.sh. Prints one "ok"/"FAIL" line per script and a closing
# "N passed, N failed" line; exits non-zero when any failed.
set -uo pipefail
[[ "$(uname -r)" == 6.1.* ]] || { echo "guest-engine.sh: expected a 6.1 guest, got $(uname -r)" >&2; exit 2; }
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: guest-engine.sh BUILD_DIR [TEST...]}
[[ $build == /* ]] || build=$src/$build
shift
tests=("$@")
if ((${#tests[@]} == 0)); then
  for t in "$src"/tests/e2e/engine_*.sh; do tests+=("$(basename "$t" .sh)"); done
fi
export CHILDFLOW=$build/childflow CHILDFLOW_SOURCE_DIR=$src
unset CHILDFLOW_FORCE_FALLBACK
echo "# kernel $(uname -r); childflow $CHILDFLOW"
"$CHILDFLOW" --doctor | grep "kernel feature" || true
pass=0 fail=0
for t in "${tests[@]}"; do
  start=$(date +%s)
  if bash "$src/tests/e2e/$t.sh" >"/tmp/oldkernel-$t.log" 2>&1; then
    pass=$((pass + 1)); echo "ok - $t ($(( $(date +%s) - start )) s)"
  else
    fail=$((fail + 1)); echo "FAIL: $t ($(( $(date +%s) - start )) s); its log:"
    sed 's/^/    /' "/tmp/oldkernel-$t.log" | tail -n 60
  fi
  grep -E "^(ok -|FAIL:)" "/tmp/oldkernel-$t.log" | sed 's/^/    /' | head -n 80
done
echo "oldkernel: $pass passed, $fail failed"
((fail == 0))
