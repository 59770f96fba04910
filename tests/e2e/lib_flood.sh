# shellcheck shell=bash
# Variables here are used by the flood_*.sh scripts that source it.
# shellcheck disable=SC2034
# Shared helpers for the flood tests (tests/e2e/flood_*.sh): hostile trees
# that try to exhaust the engine (docs/security.md, "Limits").
#
# Theory of operation
# -------------------
# A flood script sources this file (which sources lib_engine.sh) and calls
# engine_up. flood_run starts childflow in the background as the unprivileged
# lab user (the rootless case the limits are for; the tree is root in its own
# namespaces, so raw sockets work in it) with --summary in JSON and a flow log
# under $LAB_DIR/flowlogs, which lab.sh validates against the schema at
# teardown. The tree runs the flood, then a curl to the lab web server, then
# touches $FLOOD_DIR/NAME.done and waits for $FLOOD_DIR/NAME.release; so the
# engine is measured while the tree (and whatever the flood left open:
# stalled flows, pending connects) is still alive:
#   - flood_check_served: the curl after the flood got the lab's page;
#   - flood_check_rss: the engine's peak RSS (VmHWM) and current RSS stay
#     under the ceiling (flood_ceiling_kib);
#   - flood_check_idle: its CPU (utime + stime over 2 s windows) falls under
#     FLOOD_IDLE_PCT within FLOOD_IDLE_WITHIN seconds;
#   - flood_finish releases the tree and waits for childflow; flood_limits
#     reads a counter of the summary's limits_hit.
# The engine is the childflow process whose parent is not childflow (the
# init stub is its child), found among the descendants of the background
# job, never by name alone (other labs may run on the machine).
#
# The RSS ceiling is by build type (childflow --version): 64 MiB for an
# optimised build, the one docs/security.md promises; a sanitized build (the
# dev preset of `make test`) pays ASan's shadow memory and quarantine and is
# held to FLOOD_ASAN_RSS_MIB (default 192) with a 16 MiB quarantine, which
# still catches unbounded growth (before the limits, one flood took 290 MB
# in 10 s). `make floods` runs these scripts on the release build with
# FLOOD_LONG=1 (bigger floods, longer stalls).
#
# Destinations are only in the lab's documentation ranges (198.51.100.0/24,
# 203.0.113.0/24, 2001:db8::/32).

source "${CHILDFLOW_SOURCE_DIR:?CHILDFLOW_SOURCE_DIR must be the repository root}/tests/e2e/lib_engine.sh"

FLOOD_LONG=${FLOOD_LONG:-0}
FLOOD_IDLE_PCT=${FLOOD_IDLE_PCT:-5}
FLOOD_IDLE_WITHIN=${FLOOD_IDLE_WITHIN:-20}
FLOOD_WHO=${FLOOD_WHO:-user}
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=16}

# flood_scale FAST LONG : prints FAST, or LONG under FLOOD_LONG=1.
flood_scale() {
  if ((FLOOD_LONG)); then echo "$2"; else echo "$1"; fi
}

# flood_ceiling_kib : the RSS ceiling for this build, in KiB.
flood_ceiling_kib() {
  if "$CHILDFLOW" --version 2>/dev/null | grep -q "ASan"; then
    echo $((${FLOOD_ASAN_RSS_MIB:-192} * 1024))
  else
    echo $((${FLOOD_RSS_MIB:-64} * 1024))
  fi
}

flood_up() {
  engine_up
  FLOOD_DIR=$LAB_DIR/flood
  install -d -m 1777 "$FLOOD_DIR"
  echo "# flood: ${FLOOD_WHO}, RSS ceiling $(($(flood_ceiling_kib) / 1024)) MiB, long=$FLOOD_LONG"
}

# flood_run NAME TREE [childflow options...] : starts childflow in the
# background with TREE (a bash script) as the tree; sets FLOOD_JOB and
# ENGINE_PID. Extra options go before the command. FLOOD_CURL is the URL
# of the curl after the flood (default http://www.example.test/).
flood_run() {
  local name=$1 tree=$2
  shift 2
  FLOOD_NAME=$name
  # A flood may leave the tree's own new connections refused for a moment
  # (its connects still pending fill tcp_connecting): curl retries for 10 s.
  local tail="curl -sS -m 20 --retry 10 --retry-delay 1 --retry-all-errors ${FLOOD_CURL:-http://www.example.test/} \
>$FLOOD_DIR/$name.curl 2>&1; touch $FLOOD_DIR/$name.done; "
  tail+="for i in \$(seq 1200); do [ -e $FLOOD_DIR/$name.release ] && break; sleep 0.1; done"
  CF_TIMEOUT=$((CF_TIMEOUT + 300)) cf "$FLOOD_WHO" --summary --summary-format json \
    --flow-log "$LAB_DIR/flowlogs/run.$name.jsonl" "$@" -- bash -c "$tree
$tail" >"$FLOOD_DIR/$name.out" 2>"$FLOOD_DIR/$name.err" &
  FLOOD_JOB=$!
  ENGINE_PID=$(engine_pid "$FLOOD_JOB")
  [[ -n $ENGINE_PID ]] || fail "flood $name: the engine's process did not show up"
  echo "# flood $name: engine pid $ENGINE_PID"
}

# flood_wait_done TIMEOUT_S : waits for the tree to finish its flood and curl.
flood_wait_done() {
  local t0=$EPOCHREALTIME
  lab_wait_until "$1" "flood $FLOOD_NAME: the tree finished its flood" test -e "$FLOOD_DIR/$FLOOD_NAME.done"
  echo "# flood $FLOOD_NAME: flood and curl took $(elapsed_s "$t0") s after the wait began"
}

flood_check_served() {
  check_contains "$(cat "$FLOOD_DIR/$FLOOD_NAME.curl" 2>/dev/null)" "childflow lab www" \
    "[$FLOOD_NAME] after the flood the engine still serves a curl to the lab web server"
}

# flood_kib FIELD : VmHWM or VmRSS of the engine, in KiB.
flood_kib() {
  awk -v f="$1:" '$1 == f {print $2}' "/proc/$ENGINE_PID/status"
}

flood_check_rss() {
  local ceiling hwm rss
  ceiling=$(flood_ceiling_kib)
  hwm=$(flood_kib VmHWM)
  rss=$(flood_kib VmRSS)
  echo "# flood $FLOOD_NAME: VmHWM ${hwm} KiB, VmRSS ${rss} KiB"
  check_le "${hwm:-999999999}" "$ceiling" "[$FLOOD_NAME] the engine's peak RSS (KiB) stays under the ceiling"
}

# flood_cpu_pct : the engine's CPU use over the next 2 s, in percent.
flood_cpu_pct() {
  local hz a b
  hz=$(getconf CLK_TCK)
  a=$(awk '{print $14 + $15}' "/proc/$ENGINE_PID/stat")
  sleep 2
  b=$(awk '{print $14 + $15}' "/proc/$ENGINE_PID/stat")
  awk -v a="$a" -v b="$b" -v hz="$hz" 'BEGIN{printf "%.1f", (b - a) * 100 / hz / 2}'
}

flood_check_idle() {
  local pct t0=$SECONDS
  while :; do
    pct=$(flood_cpu_pct)
    if awk -v p="$pct" -v m="$FLOOD_IDLE_PCT" 'BEGIN{exit !(p < m)}' ||
      ((SECONDS - t0 >= FLOOD_IDLE_WITHIN)); then
      break
    fi
  done
  echo "# flood $FLOOD_NAME: idle after $((SECONDS - t0)) s"
  check_le "$pct" "$FLOOD_IDLE_PCT" "[$FLOOD_NAME] the engine's CPU (% over 2 s) falls back to idle"
}

# flood_finish : lets the tree exit and waits for childflow; FLOOD_SUMMARY
# is then its JSON summary.
flood_finish() {
  touch "$FLOOD_DIR/$FLOOD_NAME.release"
  wait "$FLOOD_JOB" || true
  FLOOD_SUMMARY=$(grep '^{"backend"' "$FLOOD_DIR/$FLOOD_NAME.err" | tail -n 1) || true
  [[ -n $FLOOD_SUMMARY ]] || check_fail "[$FLOOD_NAME] childflow printed its summary: $(tail -c 600 "$FLOOD_DIR/$FLOOD_NAME.err")"
}

# flood_limits LIMIT : the summary's limits_hit counter for LIMIT.
flood_limits() {
  jq -r ".limits_hit.$1 // 0" <<<"${FLOOD_SUMMARY:-{\}}"
}

# flood_events EVENT : the summary's event count for EVENT.
flood_events() {
  jq -r ".event_counts.$1 // 0" <<<"${FLOOD_SUMMARY:-{\}}"
}

# flood_check_hit LIMIT : the summary counts hits of LIMIT and the flow log
# has limit_hit lines for it whose counts add up to the same number.
flood_check_hit() {
  local n logged
  n=$(flood_limits "$1")
  logged=$(grep -F '"event":"limit_hit"' "$LAB_DIR/flowlogs/run.$FLOOD_NAME.jsonl" |
    jq -s --arg l "$1" '[.[] | select(.limit == $l) | .count] | add // 0')
  check_le 1 "$n" "[$FLOOD_NAME] the summary counts hits of $1 ($n)"
  check_eq "$n" "$logged" "[$FLOOD_NAME] the flow log's limit_hit counts for $1 add up to the summary's"
}
