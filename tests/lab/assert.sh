# shellcheck shell=bash
# Assertions for end-to-end tests (sourced by lab.sh).
#
# Theory of operation: every assertion either prints "ok - MSG" and returns 0,
# or prints "FAIL: MSG" with what was expected and what was seen, and exits the
# current shell with status 1 (which fires the lab's EXIT trap, so the lab is
# torn down). Inside $(...) or a subshell, `fail` only ends that subshell: call
# assertions from the test's main shell.

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

ok() {
  echo "ok - $*"
}

# assert_eq EXPECTED ACTUAL MSG
assert_eq() {
  if [[ "$1" == "$2" ]]; then
    ok "$3"
  else
    fail "$3: expected [$1], got [$2]"
  fi
}

# assert_contains HAYSTACK NEEDLE MSG
assert_contains() {
  if [[ "$1" == *"$2"* ]]; then
    ok "$3"
  else
    fail "$3: [$2] not found in [${1:0:4000}]"
  fi
}

# assert_not_contains HAYSTACK NEEDLE MSG
assert_not_contains() {
  if [[ "$1" != *"$2"* ]]; then
    ok "$3"
  else
    fail "$3: [$2] unexpectedly found in [${1:0:4000}]"
  fi
}

# assert_file_absent PATH [MSG]
assert_file_absent() {
  if [[ ! -e "$1" && ! -L "$1" ]]; then
    ok "${2:-$1 is absent}"
  else
    fail "${2:-file should be absent}: $1 exists"
  fi
}

# assert_exit EXPECTED_STATUS MSG CMD... : runs CMD, checks its exit status.
assert_exit() {
  local want=$1 msg=$2 got=0
  shift 2
  "$@" || got=$?
  assert_eq "$want" "$got" "$msg (exit status of: $*)"
}
