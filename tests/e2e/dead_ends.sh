#!/usr/bin/env bash
# Fewer dead ends, end to end:
#   - `--profile NAME` without a path finds NAME(.toml) in
#     $XDG_CONFIG_HOME/childflow, then in /etc/childflow (here: a private
#     overlay of /etc in a mount namespace, so the host's /etc is untouched);
#   - `--report -` reads the flow log from standard input;
#   - a hosts file with a line that does not parse is refused at start-up,
#     naming the line, from a flag or a profile key, and nothing is created;
#   - an unknown flag gets a "did you mean".
set -uo pipefail
CF=${CHILDFLOW:?set CHILDFLOW to the childflow binary}
SRC=${CHILDFLOW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$(mktemp -d /tmp/cf-dead-ends.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
pass() { echo "ok - $1"; }
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }
check() { if eval "$2"; then pass "$1"; else fail "$1"; fi; }

# --- profiles by name -----------------------------------------------------------
mkdir -p "$work/xdg/childflow" "$work/empty"
printf 'mtu = 1400\ncommand = ["true"]\n' >"$work/xdg/childflow/ci.toml"
out=$(cd "$work/empty" && XDG_CONFIG_HOME=$work/xdg "$CF" --profile ci --dump-profile 2>&1)
check "--profile ci finds \$XDG_CONFIG_HOME/childflow/ci.toml" "grep -qx 'mtu = 1400' <<<\"\$out\""
mkdir -p "$work/home/.config/childflow"
printf 'mtu = 1300\n' >"$work/home/.config/childflow/home.toml"
out=$(cd "$work/empty" && env -u XDG_CONFIG_HOME HOME=$work/home "$CF" --profile home.toml --dump-profile -- true 2>&1)
check "without XDG_CONFIG_HOME, ~/.config/childflow" "grep -qx 'mtu = 1300' <<<\"\$out\""
if [[ $(id -u) == 0 ]]; then
  out=$(cd "$work/empty" && unshare --mount --propagation private bash -c '
    set -e
    mkdir -p "$1/ovl"
    mount -t tmpfs tmpfs "$1/ovl"   # overlayfs will not take an upper dir on overlayfs
    mkdir -p "$1/ovl/upper" "$1/ovl/work"
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/ovl/upper,workdir=$1/ovl/work" /etc
    mkdir -p /etc/childflow
    printf "mtu = 1280\n" >/etc/childflow/site.toml
    XDG_CONFIG_HOME=$1/xdg "$2" --profile site --dump-profile -- true' _ "$work" "$CF" 2>&1)
  check "then /etc/childflow" "grep -qx 'mtu = 1280' <<<\"\$out\""
  check "the host's /etc has no childflow directory from this test" "[[ ! -e /etc/childflow/site.toml ]]"
fi
out=$(cd "$work/empty" && XDG_CONFIG_HOME=$work/xdg "$CF" --profile nope -- true 2>&1); rc=$?
check "a missing name says where it looked (exit 2)" \
  "[[ $rc == 2 ]] && grep -q 'no such profile: looked for .*/xdg/childflow/nope.toml, /etc/childflow/nope' <<<\"\$out\""

# --- --report - ---------------------------------------------------------------
log=$SRC/tests/fixtures/flowlogs/childflow-mixed.jsonl
# The same report, but for the name of its source.
want=$("$CF" --report "$log" --report-format json | jq -Sc 'del(.source)')
got=$(gzip -c "$log" | zcat | "$CF" --report - --report-format json | jq -Sc 'del(.source)')
check "zcat log | childflow --report - gives the same report as the file" \
  "[[ \$(jq -r .lines.events <<<\"\$want\") -gt 0 && \"\$want\" == \"\$got\" ]]"

# A line of 5 MB (untrusted input) is skipped and counted, in bounded memory.
out=$( (head -c 5000000 /dev/zero; printf '\n{"schema_version":1,"ts_ms":1,"event":"flow_end"}\n') |
  "$CF" --report - --report-format json | jq -c .lines)
check "--report -: an overlong line is one malformed line" "[[ '$out' == '{\"total\":2,\"events\":1,\"malformed\":1}' ]]"
# Standard input that is a socket (not openable as /dev/stdin) works too.
if command -v socat >/dev/null; then
  out=$(socat - EXEC:"$CF --report - --report-format json",nofork <"$log" | jq -Sc 'del(.source)')
  check "--report - reads a socket on standard input" "[[ \"\$out\" == \"\$want\" ]]"
fi

# --- a hosts file that does not parse ------------------------------------------
mkdir -p "$work/run"
printf '198.51.100.1 a.example\n\n203.0.113.7 b.example # ok\nwww.example.test 198.51.100.9\n' >"$work/bad-hosts"
out=$(cd "$work/run" && "$CF" --hosts-file "$work/bad-hosts" --flow-log f.jsonl -c c.pcapng -- true 2>&1); rc=$?
check "a hosts file with a bad line is refused at start-up, naming the line (exit 2)" \
  "[[ $rc == 2 ]] && grep -q 'line 4: \`www.example.test\` is not an IPv4 or IPv6 address' <<<\"\$out\""
check "... and nothing is created" "[[ -z \"\$(ls -A '$work/run')\" ]]"
printf 'hosts_file = "bad-hosts"\ncommand = ["true"]\n' >"$work/p.toml"
out=$("$CF" --profile "$work/p.toml" 2>&1); rc=$?
check "the same from a profile's hosts_file (exit 2)" \
  "[[ $rc == 2 ]] && grep -q 'key \`hosts_file\`: .*bad-hosts line 4' <<<\"\$out\""

if [[ $(id -u) == 0 ]]; then
  # A pipe is read once, checked and used: the tree sees its entries.
  out=$(cd "$work/run" && "$CF" --hosts-file <(printf '198.51.100.77 piped.example\n') -- getent hosts piped.example 2>&1); rc=$?
  check "--hosts-file <(...): the tree resolves the piped entry" "[[ $rc == 0 ]] && grep -q '^198.51.100.77 *piped.example' <<<\"\$out\""
  out=$(cd "$work/run" && "$CF" --hosts-file <(printf 'nonsense\n') --flow-log f.jsonl -- true 2>&1); rc=$?
  check "a bad piped hosts file stops the run before anything is created (exit 1)" \
    "[[ $rc == 1 ]] && grep -q 'line 1: \`nonsense\` is not an IPv4' <<<\"\$out\" && [[ -z \"\$(ls -A '$work/run')\" ]]"
fi

# --- did you mean ---------------------------------------------------------------
out=$("$CF" --deny-domian x.example -- true 2>&1); rc=$?
check "--deny-domian: did you mean --deny-domain (exit 2)" \
  "[[ $rc == 2 ]] && grep -q 'unknown option \`--deny-domian\` (did you mean \`--deny-domain\`?)' <<<\"\$out\""

echo "# $failures failed"
((failures == 0))
