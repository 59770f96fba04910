#!/usr/bin/env bash
# The tree runs as the caller, so tools that look the user up in
# /etc/passwd behave as they do natively (docs/sandbox.md, "Two user
# namespaces"). In the lab, as the unprivileged LAB_USER, whose passwd home
# holds an ssh key (ssh finds its keys through getpwuid, not $HOME):
# - ssh to a lab sshd works natively and through childflow, and the server
#   logs the key it accepted for LAB_USER;
# - git clone over ssh works through childflow;
# - with --as-root the tree is uid 0, ssh looks in root's home and the
#   server refuses it (what the Rust tool and the old default did);
# - a file the tree creates belongs to the caller, inside and outside.
# The test owns LAB_USER's ~/.ssh: it makes it and removes it.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

user_home=$(getent passwd "$LAB_USER" | cut -d: -f6)
[[ -d $user_home ]] || fail "$LAB_USER has no home directory ($user_home)"
made_run_sshd=0
ssh_cleanup() {
  rm -rf "${user_home:?}/.ssh"
  if ((made_run_sshd)); then rmdir /run/sshd 2>/dev/null || true; fi
}
trap 'rc=$?; ssh_cleanup; (exit $rc); lab__on_exit' EXIT
rm -rf "${user_home:?}/.ssh"

sshd=$(command -v sshd || echo /usr/sbin/sshd)
[[ -x $sshd ]] || fail "sshd is missing: ./scripts/install-deps.sh lab installs openssh-server"
if [[ ! -d /run/sshd ]]; then
  install -d -m 0755 /run/sshd   # sshd's privilege-separation directory
  made_run_sshd=1
fi

# The server: in the lab's inet namespace, on the echo host's address.
server=$LAB_ECHO4
sdir=$LAB_DIR/sshd
install -d -m 0755 "$sdir"
ssh-keygen -q -t ed25519 -N '' -f "$sdir/host_key"
# The client key, where ssh looks for it: the passwd home of LAB_USER.
runuser -u "$LAB_USER" -- sh -c 'mkdir -m 700 "$1/.ssh" && ssh-keygen -q -t ed25519 -N "" -f "$1/.ssh/id_ed25519"' sh "$user_home"
install -m 0644 "$user_home/.ssh/id_ed25519.pub" "$sdir/authorized_keys"
cat >"$sdir/sshd_config" <<CONF
ListenAddress $server
Port 22
HostKey $sdir/host_key
PidFile $sdir/sshd.pid
AuthorizedKeysFile $sdir/authorized_keys
StrictModes no
UsePAM yes
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel VERBOSE
CONF
lab__spawn sshd "$sshd" -D -e -f "$sdir/sshd_config"
slog=$LAB_DIR/log/sshd.out
for _ in $(seq 100); do grep -q "Server listening" "$slog" 2>/dev/null && break; sleep 0.05; done
grep -q "Server listening" "$slog" || fail "the lab sshd did not start: $(cat "$slog")"

# A bare repository for git over ssh.
repo=$LAB_DIR/repo.git
git init -q --bare --initial-branch=main "$repo"
work=$(mktemp -d)
git -C "$work" init -q
git -C "$work" -c user.email=t@example.test -c user.name=t commit -q --allow-empty -m "childflow identity test"
git -C "$work" push -q "$repo" HEAD:refs/heads/main
rm -rf "$work"
chown -R "$LAB_USER:" "$repo"   # git serves only repositories its user owns

SSH_OPTS=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10)
me=$LAB_USER
accepted() { grep -c "Accepted publickey for $me" "$slog" || true; }

before=$(accepted)
out=$(lab_user ssh "${SSH_OPTS[@]}" "$me@$server" 'echo REMOTE-$(id -un)' 2>&1) || fail "native ssh failed: $out; sshd: $(tail -20 "$slog")"
check_contains "$out" "REMOTE-$me" "native ssh logs in as $me"

out=$(cf user -- ssh "${SSH_OPTS[@]}" "$me@$server" 'echo REMOTE-$(id -un)' 2>&1) || true
check_contains "$out" "REMOTE-$me" "ssh through childflow logs in with the user's own key (output: ${out:0:300})"
check_eq $((before + 2)) "$(accepted)" "the server accepted the user's key for both logins"

rm -rf "$LAB_DIR/tmp-user/clone"
out=$(cf user -- env GIT_SSH_COMMAND="ssh ${SSH_OPTS[*]}" \
  git clone -q "$me@$server:$repo" "$LAB_DIR/tmp-user/clone" 2>&1) || true
log=$(runuser -u "$LAB_USER" -- git -C "$LAB_DIR/tmp-user/clone" log --format=%s 2>&1 || true)
check_eq "childflow identity test" "$log" "git clone over ssh through childflow (output: ${out:0:300})"
rm -rf "$LAB_DIR/tmp-user/clone"

rc=0
out=$(cf user --as-root -- ssh "${SSH_OPTS[@]}" "$me@$server" true 2>&1) || rc=$?
check_eq 255 "$rc" "with --as-root, ssh looks in root's home and fails"
check_contains "$out" "Permission denied (publickey)" "with --as-root the server refuses (output: ${out:0:300})"

# Files the tree creates belong to the caller.
f=$LAB_DIR/tmp-user/owned
out=$(cf user -- sh -c 'touch "$1"; stat -c "INSIDE %U %u" "$1"' sh "$f" 2>&1)
check_contains "$out" "INSIDE $me $(id -u "$me")" "inside the tree, a new file shows the caller as its owner"
check_eq "$(id -u "$me")" "$(stat -c %u "$f")" "outside, the tree's file belongs to the caller"
rm -f "$f"

engine_finish
