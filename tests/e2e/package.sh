#!/usr/bin/env bash
# Installing childflow as a tool, end to end:
#   1. the way packagers build: a Release configure with BUILD_TESTING=OFF
#      (no GoogleTest, no -Werror) builds;
#   2. `cmake --install` (into a DESTDIR) puts the binary, childflow(1) and the
#      bash, zsh and fish completions where each looks for them; the man page
#      renders without a groff warning and names every flag of --help; each
#      completion loads, and bash and fish complete flags and values;
#   3. `cpack -G DEB` builds a .deb whose Depends name the package of every
#      shared library the binary links;
#   4. in a mount namespace whose root is a throw-away overlay of this
#      machine's (pivot_root into it; the host's dpkg database and /usr stay
#      untouched), the
#      .deb installs with dpkg, `childflow --doctor` and a command tree against
#      a local server run from it, and `dpkg -r` removes every file again.
# Needs root (mounts, dpkg). Takes a few minutes: it compiles childflow once.
set -uo pipefail
SRC=${CHILDFLOW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
[[ $(id -u) == 0 ]] || { echo "skip: needs root"; exit 77; }
for tool in groff zsh fish dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (scripts/install-deps.sh build lab)"; exit 1; }
done
host_dpkg_before=$(dpkg-query -W -f='${Status} ${Version}' childflow 2>/dev/null || true)
host_bin_before=$(ls -l /usr/bin/childflow 2>/dev/null || true)
work=$(mktemp -d /var/tmp/cf-package.XXXXXX)
server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
  [[ -n ${KEEP:-} ]] || rm -rf "$work"   # KEEP=1 keeps the files to look at
}
trap cleanup EXIT
failures=0
pass() { echo "ok - $1"; }
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }
check() { if eval "$2"; then pass "$1"; else fail "$1"; fi; }

# --- 1. the packager's build --------------------------------------------------
build=$work/build
if cmake -S "$SRC" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
     -DCMAKE_INSTALL_PREFIX=/usr >"$work/configure.log" 2>&1 &&
   cmake --build "$build" -j "$(nproc)" >"$work/build.log" 2>&1; then
  pass "Release build with BUILD_TESTING=OFF"
else
  fail "packager build: $(tail -n 20 "$work/configure.log" "$work/build.log")"
  exit 1
fi
check "no GoogleTest target in that build" "! grep -q unit_ '$build/build.ninja'"

# --- 2. cmake --install ---------------------------------------------------------
root=$work/destdir
DESTDIR=$root cmake --install "$build" >"$work/install.log" 2>&1 || fail "cmake --install: $(cat "$work/install.log")"
for f in usr/bin/childflow usr/share/man/man1/childflow.1 \
         usr/share/bash-completion/completions/childflow \
         usr/share/zsh/site-functions/_childflow \
         usr/share/fish/vendor_completions.d/childflow.fish \
         usr/share/doc/childflow/copyright; do
  check "installs /$f" "[[ -s '$root/$f' ]]"
done
cf=$root/usr/bin/childflow
check "the installed binary runs" "'$cf' --version | grep -q '^childflow [0-9]'"

man=$root/usr/share/man/man1/childflow.1
warnings=$(groff -man -Tutf8 -ww -z "$man" 2>&1)
check "childflow(1) renders without a groff warning" "[[ -z \"\$warnings\" ]]"
MANWIDTH=200 man -l "$man" 2>/dev/null >"$work/man.txt"
missing=""
for flag in $("$cf" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
  grep -qF -- "$flag" "$work/man.txt" || missing+=" $flag"
done
check "the man page names every flag --help names${missing:+ (missing:$missing)}" "[[ -z '$missing' ]]"

bash_out=$(bash -c '
  source /usr/share/bash-completion/bash_completion 2>/dev/null
  source "$1"
  # As bash does: COMP_WORDS split at "=", COMP_LINE the line as typed.
  t() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE=$(sed "s/ = /=/g" <<<"$*"); COMP_POINT=${#COMP_LINE}
        COMPREPLY=(); _childflow; echo "${COMPREPLY[*]}"; }
  t childflow --capture-p
  t childflow -C ""
  t childflow --offline --default-policy ""
  t childflow --proxy-o
  t childflow --capture-point = ""
  t childflow --dns = 198.51.100.53 --off
  t childflow --offline curl --block-pr' _ "$root/usr/share/bash-completion/completions/childflow" 2>&1)
check "bash completes --capture-p" "sed -n 1p <<<\"\$bash_out\" | grep -qx -- --capture-point"
check "bash completes -C's views" "sed -n 2p <<<\"\$bash_out\" | grep -qx 'child egress wire-egress both'"
check "bash completes --default-policy after a switch" "sed -n 3p <<<\"\$bash_out\" | grep -qx 'allow deny'"
check "bash completes --proxy-o" "sed -n 4p <<<\"\$bash_out\" | grep -qx -- --proxy-only"
check "bash completes --capture-point=" "sed -n 5p <<<\"\$bash_out\" | grep -qx 'child egress wire-egress both'"
check "bash completes flags after --dns=VALUE" "sed -n 6p <<<\"\$bash_out\" | grep -qx -- --offline"
check "bash leaves the command's words to the command" "! sed -n 7p <<<\"\$bash_out\" | grep -q -- --block-private"
check "the zsh completion parses" "zsh -n '$root/usr/share/zsh/site-functions/_childflow'"
fish_out=$(fish -c "source '$root/usr/share/fish/vendor_completions.d/childflow.fish'; complete -C'childflow --summary-f'; complete -C'childflow --summary-format '; echo ---; complete -C'childflow -p http://p:1 curl --verb'" 2>&1)
check "fish completes --summary-f" "grep -q '^--summary-format' <<<\"\$fish_out\""
check "fish completes --summary-format's values" "grep -q '^json' <<<\"\$fish_out\" && grep -q '^text' <<<\"\$fish_out\""
check "fish offers no childflow flag once the command started" "! sed -n '/^---/,\$p' <<<\"\$fish_out\" | grep -q -- '^--verbose'"

# --- 3. the .deb ------------------------------------------------------------------
(cd "$build" && cpack -G DEB >"$work/cpack.log" 2>&1) || fail "cpack: $(tail -n 20 "$work/cpack.log")"
deb=$(ls "$build"/childflow_*.deb 2>/dev/null | head -1)
check "cpack builds a .deb" "[[ -s '$deb' ]]"
depends=$(dpkg-deb -f "$deb" Depends 2>/dev/null)
echo "# Depends: $depends"
# The libraries the binary itself links (NEEDED), not theirs.
needed=$(readelf -d "$cf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for name in $needed; do
  lib=$(ldd "$cf" | awk -v n="$name" '$1 == n {print $3}')
  pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1)
  [[ -z $pkg ]] && pkg=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1)
  check "Depends covers $(basename "$lib") ($pkg)" "[[ -n '$pkg' && ', $depends' == *', $pkg'* ]]"
done

# --- 4. install, run and remove it in a throw-away root -------------------------
# A local server on the host's loopback, reached by the tree at the gateway
# address through --allow-host-loopback.
mkdir -p "$work/www" && echo "hello from the host" >"$work/www/index.html"
port=$((20000 + RANDOM % 20000))   # not a fixed port: a stale server must not answer
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$port" >"$work/http.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
cp "$deb" "$work/childflow.deb"
cat >"$work/inside.sh" <<'EOF'
set -u
dpkg -i /cf/childflow.deb >/cf/dpkg-i.log 2>&1 && echo "installed"
command -v childflow
childflow --doctor >/cf/doctor.txt 2>&1; echo "doctor exit $?"
childflow --summary --allow-host-loopback -- sh -c \
  'gw=$(awk "/^nameserver [0-9.]+\$/{print \$2; exit}" /etc/resolv.conf); curl -sS http://$gw:PORT/index.html' \
  >/cf/run.out 2>/cf/run.err; echo "run exit $?"
dpkg -r childflow >/cf/dpkg-r.log 2>&1 && echo "removed"
for f in /usr/bin/childflow /usr/share/man/man1/childflow.1 /usr/share/bash-completion/completions/childflow; do
  [ -e "$f" ] && echo "left: $f"
done
exit 0
EOF
sed -i "s/:PORT\//:$port\//" "$work/inside.sh"
out=$(unshare --mount --propagation private bash -c '
  set -e
  w=$1
  mkdir -p "$w/ovl" "$w/newroot"
  mount -t tmpfs tmpfs "$w/ovl"
  mkdir -p "$w/ovl/upper" "$w/ovl/work"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$w/ovl/upper,workdir=$w/ovl/work" "$w/newroot"
  for d in proc sys dev run; do mount --rbind "/$d" "$w/newroot/$d"; done
  mount -t tmpfs tmpfs "$w/newroot/tmp"
  mkdir -p "$w/newroot/cf" "$w/newroot/.oldroot"
  mount --bind "$w" "$w/newroot/cf"
  # pivot_root, not chroot: the kernel refuses new user namespaces to a
  # chrooted process.
  cd "$w/newroot"
  pivot_root . .oldroot
  umount -l /.oldroot
  exec bash /cf/inside.sh' _ "$work" 2>&1)
echo "$out" | sed 's/^/# /'
check "the .deb installs with dpkg in the throw-away root" "grep -qx installed <<<\"\$out\""
check "it installs childflow in /usr/bin" "grep -qx /usr/bin/childflow <<<\"\$out\""
check "childflow --doctor runs from the package" "grep -q 'doctor exit [01]' <<<\"\$out\" && [[ -s '$work/doctor.txt' ]]"
check "a command tree runs from the package and reaches the local server" \
  "grep -qx 'run exit 0' <<<\"\$out\" && grep -qx 'hello from the host' '$work/run.out'"
check "the run prints its summary" "grep -q 'childflow summary' '$work/run.err'"
check "dpkg -r removes it" "grep -qx removed <<<\"\$out\""
check "no file of the package is left behind" "! grep -q '^left:' <<<\"\$out\""
check "the host's dpkg database did not change" \
  "[[ \"\$(dpkg-query -W -f='\${Status} \${Version}' childflow 2>/dev/null || true)\" == \"\$host_dpkg_before\" ]]"
check "the host's /usr/bin/childflow did not change" \
  "[[ \"\$(ls -l /usr/bin/childflow 2>/dev/null || true)\" == \"\$host_bin_before\" ]]"

echo "# $failures failed"
((failures == 0))
