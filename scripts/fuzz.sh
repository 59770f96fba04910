#!/usr/bin/env bash
# fuzz.sh [NAME...]: runs each libFuzzer target of the `fuzz` preset
# (build/fuzz/fuzz_<NAME>, from tests/fuzz/fuzz_<NAME>.cpp; default: all of
# them) for FUZZ_SECONDS seconds (default 60), one after the other, and prints
# per target the executions, the new corpus units and the crashes.
#
#   FUZZ_SECONDS  seconds per target (default 60)
#   FUZZ_BUILD    the fuzz build directory (default build/fuzz)
#   FUZZ_ARGS     more libFuzzer flags, e.g. FUZZ_ARGS=-max_len=16384
#
# The seeds stay as they are in git: each target reads tests/fuzz/corpus/<NAME>/
# and writes what it finds to build/fuzz/corpus-<NAME>/ (kept between runs,
# so a later run starts from there), a crashing input to
# build/fuzz/artifacts-<NAME>/ and its whole output to build/fuzz/logs/<NAME>.log.
# tests/fuzz/<NAME>.dict, if there is one, is the target's dictionary. A
# target stops at its first crash; the others still run. To reproduce one:
#   build/fuzz/fuzz_<NAME> build/fuzz/artifacts-<NAME>/crash-...
# A fixed crash's input goes into tests/fuzz/corpus/<NAME>/ (the CTest test
# fuzz.<NAME> replays every seed) with a unit test of the fix.
#
# Exit status: 0 when no target crashed, 1 when one did, 2 on a usage error
# or a missing build.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD:-build/fuzz}
read -r -a extra <<<"${FUZZ_ARGS:-}"
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: FUZZ_SECONDS must be a positive number of seconds, not \`$seconds\`" >&2
  exit 2
fi

names=("$@")
if ((${#names[@]} == 0)); then
  for src in tests/fuzz/fuzz_*.cpp; do
    n=${src##*/fuzz_}
    names+=("${n%.cpp}")
  done
fi
for n in "${names[@]}"; do
  if [[ ! -x $build/fuzz_$n ]]; then
    echo "fuzz.sh: no $build/fuzz_$n: build it first (cmake --preset fuzz && cmake --build --preset fuzz)" >&2
    exit 2
  fi
done

count() { find "$1" -maxdepth 1 -type f | wc -l; }

mkdir -p "$build/logs"
status=0
summary=()
echo "fuzz.sh: ${#names[@]} targets, ${seconds} s each"
for n in "${names[@]}"; do
  corpus=$build/corpus-$n
  artifacts=$build/artifacts-$n
  log=$build/logs/$n.log
  mkdir -p "$corpus" "$artifacts"
  dict=()
  [[ -f tests/fuzz/$n.dict ]] && dict=(-dict="tests/fuzz/$n.dict")
  units_before=$(count "$corpus")
  crashes_before=$(find "$artifacts" -maxdepth 1 -type f \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)

  # New units go to the first directory; the seeds are only read.
  "$build/fuzz_$n" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 \
    -artifact_prefix="$artifacts/" "${dict[@]}" "${extra[@]}" \
    "$corpus" "tests/fuzz/corpus/$n" </dev/null >"$log" 2>&1
  rc=$?

  execs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$log" | tail -n 1)
  corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -n 1 | cut -d' ' -f2)
  new_units=$(($(count "$corpus") - units_before))
  crashes=$(($(find "$artifacts" -maxdepth 1 -type f \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l) -
    crashes_before))
  if ((rc != 0)); then
    status=1
    ((crashes == 0)) && crashes=1  # died without writing an artifact
  fi
  line=$(printf '%-14s %12s executions  %6s new corpus units (corpus %s)  %s crashes' \
    "$n" "${execs:-?}" "$new_units" "${corp:-?}" "$crashes")
  echo "$line"
  summary+=("$line")
  if ((rc != 0)); then
    echo "  exit $rc; see $log and $artifacts/:"
    grep -E '^(==[0-9]+==ERROR|SUMMARY)' "$log" | head -n 3 | sed 's/^/  /'
  fi
done

echo
echo "fuzz.sh: ${seconds} s per target"
printf '%s\n' "${summary[@]}"
exit $status
