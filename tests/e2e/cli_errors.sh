#!/usr/bin/env bash
# End-to-end: the command line as a user meets it. Every rejected combination
# of docs/cli.md (and the profile errors of docs/profile.md) must exit 2 with
# exactly one line `childflow: error: ...` that contains a key phrase, print
# nothing on stdout, and create nothing: each case runs in a fresh empty
# directory, with --capture/--flow-log pointing into it, and the directory
# must still be empty afterwards. Also checks --help, --version and the
# --dump-profile round trip through the binary. Needs no lab, no root.
set -u

CF=${CHILDFLOW:?set CHILDFLOW to the childflow binary}
SRC=${CHILDFLOW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
FIX=$SRC/tests/fixtures/profiles

work=$(mktemp -d /tmp/cf-cli-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT
data=$work/data
mkdir -p "$data"
printf '198.51.100.1 a.example\n' >"$data/hosts"
printf '{"schema_version":1,"ts_ms":1,"event":"flow_end"}\n' >"$data/flows.jsonl"

failures=0
checks=0
pass() { checks=$((checks + 1)); echo "ok - $*"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "not ok - $*"; }

# rejects PHRASE ARGS...: runs childflow ARGS in a fresh directory.
rejects() {
  local phrase=$1
  shift
  local run rc lines desc="rejects: $*"
  run=$(mktemp -d "$work/run.XXXXXX")
  (cd "$run" && exec "$CF" "$@") >"$work/out" 2>"$work/err" </dev/null
  rc=$?
  lines=$(wc -l <"$work/err")
  if [ "$rc" -ne 2 ]; then
    fail "$desc: exit $rc, expected 2 ($(head -c 300 "$work/err"))"
  elif [ "$lines" -ne 1 ]; then
    fail "$desc: $lines lines on stderr, expected 1: $(cat "$work/err")"
  elif ! head -n1 "$work/err" | grep -q '^childflow: error: '; then
    fail "$desc: stderr does not start with 'childflow: error: ': $(cat "$work/err")"
  elif ! grep -qF -- "$phrase" "$work/err"; then
    fail "$desc: message lacks '$phrase': $(cat "$work/err")"
  elif [ -s "$work/out" ]; then
    fail "$desc: printed on stdout: $(head -c 200 "$work/out")"
  elif [ -n "$(ls -A "$run")" ]; then
    fail "$desc: created files: $(ls -A "$run")"
  else
    pass "$desc -> $(cut -c1-110 "$work/err")"
  fi
  rm -rf "$run"
}

# Outputs that would be created by a run (relative: inside the fresh dir).
OUT=(-c out.pcapng --flow-log flows.jsonl)

# --- rejected combinations of docs/cli.md ---------------------------------
rejects "no command to run" "${OUT[@]}"
rejects "no command to run" --offline --summary
rejects "--report reads a flow log and runs nothing" --report "$data/flows.jsonl" -- true
rejects "--report reads a flow log and runs nothing" --report "$data/flows.jsonl" ls -l
rejects "--iface eth0 needs the rootful backend" "${OUT[@]}" --iface eth0 -- true
rejects "--iface eth0 needs the rootful backend" -i eth0 true
rejects "--hosts-file: cannot read $data/missing" "${OUT[@]}" --hosts-file "$data/missing" true
rejects "is a directory" --hosts-file "$data" true
rejects "--capture-point egress needs --capture" -C egress true
rejects "--capture-point wire-egress needs --capture" --capture-point wire-egress --flow-log f.jsonl true
rejects "--capture-point both needs --capture" -C both true
rejects "--proxy-user is given without --proxy-password" "${OUT[@]}" -p http://p:3128 -U u true
rejects "--proxy-password is given without --proxy-user" -p http://p:3128 -P pw true
rejects "--proxy-user needs a proxy" "${OUT[@]}" -U u -P pw true
rejects "--proxy-insecure needs a proxy" --proxy-insecure true
rejects "--proxy-ca needs a proxy" --proxy-ca "$data/hosts" true
rejects "--proxy-ca only applies to https:// proxies" -p http://p:3128 --proxy-ca "$data/hosts" true
rejects "--proxy-ca: cannot read" -p https://p:3128 --proxy-ca missing-ca.pem true
rejects "--proxy-only needs a proxy" "${OUT[@]}" --proxy-only true
rejects "--proxy-insecure only applies to https:// proxies" -p http://p:3128 --proxy-insecure true
rejects "--proxy-insecure only applies to https:// proxies" -p socks5://p:1080 --proxy-insecure true
rejects "has a path \`/x\`" "${OUT[@]}" -p http://proxy:3128/x true
rejects "has a query" -p 'http://proxy:3128?a=b' true
rejects "has a fragment" -p 'http://proxy:3128#frag' true
rejects "has no port" -p http://proxy true
rejects "has no port" -p socks5://[2001:db8::1] true
rejects "bad port" -p http://proxy:0 true
rejects "bad port" -p http://proxy:65536 true
rejects "bad port" -p http://proxy:http true
rejects "unknown scheme \`ftp\`" -p ftp://proxy:21 true
rejects "socks5h:// is not a scheme childflow takes: use socks5://proxy:1080 with --proxy-dns remote" -p socks5h://proxy:1080 true
rejects "--proxy-dns remote needs a proxy" "${OUT[@]}" --proxy-dns remote true
rejects "--proxy-dns: \`names\` is not a mode: use local or remote" -p socks5://proxy:1080 --proxy-dns names true
rejects "has no scheme" -p proxy:3128 true
rejects "IPv6 host without brackets" -p http://2001:db8::1:3128 true
rejects "-U/--proxy-user and -P/--proxy-password" -p http://user:pw@proxy:3128 true

# --- the proxy password's other sources (docs/proxy.md, "Credentials") ------
PXU=(-p http://p:3128 -U u)
printf 'pw\n' >"$data/ok.pw"
: >"$data/empty.pw"
printf '\n' >"$data/newline.pw"
head -c 5000 /dev/zero | tr '\0' x >"$data/big.pw"
printf 'user\npassword\n' >"$data/two.pw"
mkfifo "$data/fifo.pw"
rejects "missing.pw: No such file or directory: give a file that holds the proxy password" "${PXU[@]}" --proxy-password-file missing.pw true
rejects "--proxy-password-file: $data/empty.pw is empty: write the proxy password into it" "${PXU[@]}" --proxy-password-file "$data/empty.pw" true
rejects "--proxy-password-file: $data/newline.pw is empty" "${PXU[@]}" --proxy-password-file "$data/newline.pw" true
rejects "--proxy-password-file: $data is a directory" "${OUT[@]}" "${PXU[@]}" --proxy-password-file "$data" true
rejects "--proxy-password-file: $data/fifo.pw is not a regular file" "${PXU[@]}" --proxy-password-file "$data/fifo.pw" true
rejects "is larger than 4 KiB" "${PXU[@]}" --proxy-password-file "$data/big.pw" true
rejects "the password in $data/two.pw contains control characters" "${PXU[@]}" --proxy-password-file "$data/two.pw" true
rejects "-P/--proxy-password and --proxy-password-file both give the proxy password: give only one of them" \
  "${OUT[@]}" "${PXU[@]}" -P pw --proxy-password-file "$data/ok.pw" true
rejects "--proxy-password-file is given without --proxy-user" -p http://p:3128 --proxy-password-file "$data/ok.pw" true
rejects "--proxy-user is given without --proxy-password: give the password too (--proxy-password-file FILE, CHILDFLOW_PROXY_PASSWORD or -P PASSWORD)" "${PXU[@]}" true
CHILDFLOW_PROXY_PASSWORD=$'two\nlines' rejects "CHILDFLOW_PROXY_PASSWORD: the proxy password contains control characters" "${PXU[@]}" true
printf 'proxy_password = "a"\nproxy_password_file = "ok.pw"\n' >"$data/both-pw.toml"
rejects "profile $data/both-pw.toml line 2: keys \`proxy_password\` and \`proxy_password_file\` give the same setting" --profile "$data/both-pw.toml" "${PXU[@]}" true
printf 'proxy_password_file = "none.pw"\n' >"$data/none-pw.toml"
rejects "profile $data/none-pw.toml line 1: key \`proxy_password_file\`: cannot read $data/none.pw" --profile "$data/none-pw.toml" "${PXU[@]}" true
rejects "--show-secrets is only used with --dump-profile" --show-secrets true
rejects "\`nonsense\` is not a CIDR prefix" --allow-cidr nonsense true
rejects "the length must be 0 to 32" --deny-cidr 198.51.100.0/33 true
rejects "\`10.1.2.3/8\` has host bits set: did you mean 10.0.0.0/8?" "${OUT[@]}" --deny-cidr 10.1.2.3/8 true
rejects "\`2001:db8::1/32\` has host bits set: did you mean 2001:db8::/32?" --allow-cidr 2001:db8::1/32 true
rejects "is not a DNS name" --allow-domain 'bad..example' true
rejects "starts or ends with \`-\`" --deny-domain '-bad.example' true
rejects "contains \`_\`" --allow-domain-exact 'a_b.example' true
rejects "at most 63" --deny-domain-exact "$(printf 'a%.0s' $(seq 64)).example" true
rejects "at most 253" --allow-domain "$(printf 'abcdefghi.%.0s' $(seq 26))example" true
rejects "drop the \`*.\`" --allow-domain '*.example.com' true
rejects "is an IP address, not a DNS name" --deny-domain 198.51.100.1 true

# --- bad values and usage ----------------------------------------------------
rejects "is not a capture point" -c out.pcapng -C wire true
rejects "is not a format" --summary-format xml true
rejects "is not a policy" --default-policy block true
rejects "--dns: \`resolver.example\` is not an IP address" -d resolver.example true
rejects "--mtu: MTU 575 is out of range" --mtu 575 true
rejects "--mtu: MTU 65521 is out of range" --mtu 65521 true
rejects "is not a number" --mtu 1500b true
rejects "unknown option \`--bogus\`" --bogus true
rejects "unknown option \`-x\`" -x true
rejects "--capture needs a value" --capture
rejects "--offline takes no value" --offline=yes true
rejects "--capture is given 2 times" -c a.pcapng -c b.pcapng true
rejects "separate modes" --doctor --dump-profile
rejects "--doctor runs no command" --doctor true
rejects "--cleanup runs no command" --cleanup true
rejects "--doctor-format is only used with --doctor" --doctor-format json true
rejects "is not a format" --doctor --doctor-format yaml
rejects "--report: cannot read" --report missing.jsonl
rejects "is not a report format: use text, markdown, json or html" --report "$data/flows.jsonl" --report-format pdf
rejects "give them different files" -c same --flow-log same true
rejects "the directory $work/nodir does not exist" -c "$work/nodir/x.pcapng" true

# --- profile errors (file, line, key) ---------------------------------------
printf 'offline = true\n\nmtu = "big"\n' >"$data/type.toml"
rejects "profile $data/type.toml line 3: key \`mtu\`: expected an integer" --profile "$data/type.toml" true
printf 'summary = true\nallow_cidr = ["10.0.0.0/8"]\n' >"$data/unknown.toml"
rejects "profile $data/unknown.toml line 2: unknown key \`allow_cidr\`" --profile "$data/unknown.toml" true
printf 'deny_cidrs = [\n  "10.1.2.3/8",\n]\n' >"$data/value.toml"
rejects "profile $data/value.toml line 2: key \`deny_cidrs\`: element 1: \`10.1.2.3/8\` has host bits set" --profile "$data/value.toml" true
printf 'extends = "b.toml"\n' >"$data/a.toml"
printf 'extends = "./a.toml"\n' >"$data/b.toml"
rejects "profile inheritance cycle: $data/a.toml -> $data/b.toml -> $data/a.toml" --profile "$data/a.toml" true
printf 'capture = "cap.pcapng"\nflow_log = "log.jsonl"\niface = "eth0"\ncommand = ["true"]\n' >"$data/iface.toml"
rejects "needs the rootful backend" --profile "$data/iface.toml"
rejects "cannot read profile $data/none.toml" --profile "$data/none.toml" true
if [ -e "$data/cap.pcapng" ] || [ -e "$data/log.jsonl" ]; then
  fail "a rejected profile run created its capture or flow log"
else
  pass "a rejected profile run created neither its capture nor its flow log"
fi

# --- --help and --version ----------------------------------------------------
if "$CF" --help >"$work/help" 2>"$work/err" && [ ! -s "$work/err" ]; then
  pass "--help exits 0 with nothing on stderr"
else
  fail "--help failed: $(cat "$work/err")"
fi
for flag in --profile --dump-profile -c,--capture -C,--capture-point --root --doctor \
  --doctor-format --report --report-format -d,--dns --hosts-file -p,--proxy \
  -U,--proxy-user -P,--proxy-password --proxy-insecure --summary --summary-format \
  --flow-log --offline --block-private --block-metadata --default-policy --allow-cidr \
  --deny-cidr --allow-domain --deny-domain --allow-domain-exact --deny-domain-exact \
  --proxy-only --fail-on-leak -i,--iface -h,--help -V,--version --allow-host-loopback \
  --mtu --cleanup --proxy-ca --proxy-dns --proxy-password-file --show-secrets; do
  if grep -qE -- "(^|[ ,])$flag( |$)" "$work/help"; then
    pass "--help lists $flag"
  else
    fail "--help does not list $flag"
  fi
done
if [ "$("$CF" -h)" = "$(cat "$work/help")" ]; then pass "-h equals --help"; else fail "-h differs from --help"; fi
v=$("$CF" --version 2>&1)
rc=$?
if [ $rc -eq 0 ] && echo "$v" | head -1 | grep -qE '^childflow [0-9]+\.[0-9]+\.[0-9]+( \(git [0-9a-f]+\))?$' &&
  echo "$v" | grep -q '^build: ' && echo "$v" | grep -q '^features: '; then
  pass "--version prints the version, the build and its features: $(echo "$v" | head -1)"
else
  fail "--version printed '$v' (exit $rc)"
fi
if [ "$("$CF" -V)" = "$v" ]; then pass "-V equals --version"; else fail "-V differs from --version"; fi

# --- --dump-profile ----------------------------------------------------------
cd "$work" || exit 1
if "$CF" --dump-profile --show-secrets -c 'cap "q".pcapng' -C both -p 'socks5://[2001:DB8::1]:1080' \
  -U 'ü\"' -P '-pass word' --deny-domain Example.COM. --allow-cidr 198.51.100.0/24 \
  --hosts-file "$data/hosts" --mtu 1280 -d 2001:db8::53 --summary --summary-format json \
  -- sh -c 'echo -p' >"$work/d1.toml" 2>"$work/err"; then
  pass "--dump-profile of many flags exits 0"
else
  fail "--dump-profile failed: $(cat "$work/err")"
fi
if grep -qF 'command = [' "$work/d1.toml" && grep -qF '"echo -p"' "$work/d1.toml" &&
  grep -qF "capture = \"$work/cap \\\"q\\\".pcapng\"" "$work/d1.toml" &&
  grep -qF 'proxy = "socks5://[2001:db8::1]:1080"' "$work/d1.toml" &&
  grep -qF 'deny_domains = [' "$work/d1.toml" && grep -qF '"example.com"' "$work/d1.toml"; then
  pass "dump has absolute paths, normalised values and the untouched command"
else
  fail "dump content unexpected: $(cat "$work/d1.toml")"
fi
mkdir -p "$work/elsewhere"
(cd "$work/elsewhere" && "$CF" --profile "$work/d1.toml" --dump-profile --show-secrets) >"$work/d2.toml" 2>"$work/err"
if cmp -s "$work/d1.toml" "$work/d2.toml"; then
  pass "--dump-profile --show-secrets output loads back to the same profile (from another directory)"
else
  fail "round trip differs: $(diff "$work/d1.toml" "$work/d2.toml" | head -20) $(cat "$work/err")"
fi
if grep -qxF 'proxy_password = "-pass word"' "$work/d1.toml"; then
  pass "--dump-profile --show-secrets writes the password"
else
  fail "--show-secrets dump lacks the password: $(cat "$work/d1.toml")"
fi

# Without --show-secrets the password is redacted: a comment instead of the
# key, so the dump loads only when the password is given another way.
"$CF" --dump-profile -p http://p:3128 -U u -P 'hunter2 x' >"$work/r1.toml" 2>"$work/err"
if ! grep -qF hunter2 "$work/r1.toml" &&
  grep -qxF '# proxy_password = (redacted: --dump-profile --show-secrets prints it)' "$work/r1.toml"; then
  pass "--dump-profile redacts the password"
else
  fail "redacted dump unexpected: $(cat "$work/r1.toml") $(cat "$work/err")"
fi
rejects "--proxy-user is given without --proxy-password" --profile "$work/r1.toml" --dump-profile
CHILDFLOW_PROXY_PASSWORD='hunter2 x' "$CF" --profile "$work/r1.toml" --dump-profile >"$work/r2.toml" 2>"$work/err"
if cmp -s "$work/r1.toml" "$work/r2.toml"; then
  pass "a redacted dump loads back with CHILDFLOW_PROXY_PASSWORD and dumps the same"
else
  fail "redacted round trip differs: $(diff "$work/r1.toml" "$work/r2.toml" | head) $(cat "$work/err")"
fi
"$CF" --dump-profile -p http://p:3128 -U u --proxy-password-file "$data/ok.pw" >"$work/f1.toml" 2>"$work/err"
if grep -qxF "proxy_password_file = \"$data/ok.pw\"" "$work/f1.toml" && ! grep -q '^proxy_password =' "$work/f1.toml" &&
  "$CF" --profile "$work/f1.toml" --dump-profile >"$work/f2.toml" 2>>"$work/err" && cmp -s "$work/f1.toml" "$work/f2.toml"; then
  pass "a password read from a file is dumped as the file, and loads back"
else
  fail "password-file dump unexpected: $(cat "$work/f1.toml" "$work/err")"
fi
if [ -z "$(ls -A "$work/elsewhere")" ] && [ ! -e "$work/cap \"q\".pcapng" ]; then
  pass "--dump-profile created nothing"
else
  fail "--dump-profile created files"
fi

for f in "$FIX"/*.toml; do
  # --show-secrets: base.toml has a proxy password, which a dump redacts.
  if "$CF" --profile "$f" --dump-profile --show-secrets >"$work/fx1.toml" 2>"$work/err" &&
    "$CF" --profile "$work/fx1.toml" --dump-profile --show-secrets >"$work/fx2.toml" 2>>"$work/err" &&
    cmp -s "$work/fx1.toml" "$work/fx2.toml"; then
    pass "Rust fixture $(basename "$f") loads unchanged and round-trips"
  else
    fail "Rust fixture $(basename "$f"): $(cat "$work/err")"
  fi
done
"$CF" --profile "$FIX/http-origin.toml" --dump-profile >"$work/fx.toml" 2>/dev/null
if grep -qF "capture = \"$FIX/captures/http-origin.pcapng\"" "$work/fx.toml" &&
  grep -qF 'proxy = "http://proxy-http:3128"' "$work/fx.toml" &&
  grep -qF 'default_policy = "deny"' "$work/fx.toml"; then
  pass "http-origin.toml: extends base.toml, paths resolved against the profile's directory"
else
  fail "http-origin.toml dump unexpected: $(cat "$work/fx.toml")"
fi
# A command on the command line replaces the profile's command.
"$CF" --profile "$FIX/http-origin.toml" --dump-profile -- echo hi >"$work/fx.toml" 2>/dev/null
if grep -A3 '^command = \[' "$work/fx.toml" | grep -qF '"hi"' && ! grep -qF curl "$work/fx.toml"; then
  pass "a command given on the command line replaces the profile's command"
else
  fail "command not replaced: $(cat "$work/fx.toml")"
fi

echo "# $checks checks, $failures failed"
[ "$failures" -eq 0 ]
