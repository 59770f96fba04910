# Shared by the capture tests (capture_views.sh, capture_wire.sh,
# engine_offload.sh): reading
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

# tshark_verbose FILE: tshark's full dissection of every frame (-V), with
# every IP, TCP and UDP checksum validated, for checks that no frame is
# malformed or has a bad checksum. TCP streams are reassembled with
# out-of-order segments queued until the gap before them is filled: tap0
# may drop a frame as a real link does (the tree's kernel then resends it),
# and without that option tshark 4.0 reassembles the segments after the
# gap as if they were next, then reports the resent segment as "New
# fragment overlaps old data" (Malformed) although its bytes are the same
# (seen in CI, and checked byte by byte against the file sent). Neither way
# does tshark compare a resent segment's bytes with the first copy's:
# capture_payloads.py does that.
tshark_verbose() {
  tshark -n -o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE \
    -o tcp.reassemble_out_of_order:TRUE -V -r "$1" 2>&1
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
