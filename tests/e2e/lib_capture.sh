# Shared by the capture tests (capture_views.sh, capture_wire.sh): reading
# pcapng files with tshark and matching their per-frame comments with the
# flow log (docs/capture.md, "Per-packet comments"). Sourced after
# lib_engine.sh.

# tshark_fields FILE FILTER -e FIELD...: the fields of the frames FILTER
# selects, one frame per line. -n: tshark must not resolve names (no lookup
# leaves the machine).
tshark_fields() {
  local file=$1 filter=$2
  shift 2
  tshark -n -r "$file" -Y "$filter" -T fields "$@" 2>/dev/null
}

# flowlog_ids LOG EVENT [KEY=VALUE...]: the flow_ids of LOG's EVENT lines
# whose KEYs have those VALUEs (compared as text), sorted by number, unique,
# space-separated.
flowlog_ids() {
  python3 -c 'import json, sys
log, event, conds = sys.argv[1], sys.argv[2], [a.split("=", 1) for a in sys.argv[3:]]
ids = set()
for e in map(json.loads, open(log)):
    if e.get("event") == event and all(str(e.get(k)) == v for k, v in conds):
        ids.add(e["flow_id"])
print(" ".join(str(i) for i in sorted(ids)))' "$@"
}

# check_comments WHAT FILE FILTER WANT: the distinct opt_comments of the
# frames FILTER selects, sorted by flow id and joined by spaces, are WANT
# ("flow_id=3 flow_id=4"); a frame without a comment makes it fail.
check_comments() {
  local what=$1 file=$2 filter=$3 want=$4 got
  got=$(tshark_fields "$file" "$filter" -e frame.comment | sort -u -t= -k2 -n | tr '\n' ' ')
  check_eq "$want " "$got" "$what"
}
