#!/usr/bin/env bash
# wsbal's command line: -t on good and bad files (every error as FILE:LINE), -V, -h, exit codes.
set -u
: "${WSBAL:?path of the built wsbal}" "${WSBAL_SOURCE_ROOT:?}"

passed=0 failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The environment must not leak overrides into these tests.
for v in $(env | grep -o '^WSBAL_[A-Z0-9_]*' | grep -v '^WSBAL_SOURCE_ROOT$'); do unset "$v"; done

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# expect_run NAME WANT_STATUS CMD...: runs CMD, keeps stdout+stderr in $out, checks the status.
expect_run() {
  local name=$1 want=$2
  shift 2
  out=$("$@" 2>&1)
  local got=$?
  if [ "$got" -eq "$want" ]; then ok; else fail "$name: exit $got, want $want; output: $out"; fi
}
expect_line() {
  local name=$1 pattern=$2
  if printf '%s\n' "$out" | grep -qE -- "$pattern"; then ok; else fail "$name: no line matching /$pattern/ in: $out"; fi
}

good="$tmp/good.ini"
cat > "$good" <<'INI'
[listen]
address = 127.0.0.1:18080
[admin]
address = off
[backend:one]
url = ws://127.0.0.1:19001
INI

expect_run "good file" 0 "$WSBAL" -t -c "$good"
expect_line "good file" '^configuration OK$'
expect_run "long options" 0 "$WSBAL" --test --config "$good"
expect_run "reference config" 0 "$WSBAL" -t -c "$WSBAL_SOURCE_ROOT/etc/wsbal.ini"
expect_run "demo config" 0 "$WSBAL" -t -c "$WSBAL_SOURCE_ROOT/etc/wsbal-demo.ini"
expect_run "-w override" 0 "$WSBAL" -t -w 3 -c "$good"

expect_run "version" 0 "$WSBAL" -V
expect_line "version" '^wsbal [0-9]+\.[0-9]+\.[0-9]+'
expect_run "help" 0 "$WSBAL" -h
expect_line "help" '^usage: wsbal'
expect_run "unknown option" 2 "$WSBAL" --frobnicate
expect_run "bad -w" 2 "$WSBAL" -t -w 0 -c "$good"
expect_run "stray argument" 2 "$WSBAL" -t -c "$good" extra

expect_run "missing file" 1 "$WSBAL" -t -c "$tmp/nope.ini"
expect_line "missing file" "^$tmp/nope.ini:[0-9]+: "

# Every kind of mistake in one file: all reported at once, each at its own line.
bad="$tmp/bad.ini"
cat > "$bad" <<'INI'
[wsbal]
workers = many
colour = blue
[listen]
address = 127.0.0.1
handshake_timeout = 10x
max_header_bytes = 16q
[nosuchsection]
key = value
[upstream]
algorithm = fastest
failover = maybe
[admin]
address = 0.0.0.0:8081
[backend:a]
url = http://127.0.0.1:1
[backend:b]
url = ws://127.0.0.1:2
weight = 5000
[backend:b]
url = ws://127.0.0.1:3
INI
expect_run "bad file" 1 "$WSBAL" -t -c "$bad"
for line in 2 3 5 6 7 8 11 12 14 16 19 20; do
  expect_line "bad file line $line" "^$bad:$line: "
done
errors=$(printf '%s\n' "$out" | grep -c "^$bad:[0-9]*: ")
[ "$errors" -ge 12 ] && ok || fail "bad file: $errors errors reported, want at least 12"

# No backend at all.
printf '[listen]\naddress = 127.0.0.1:18080\n' > "$tmp/empty.ini"
expect_run "no backend" 1 "$WSBAL" -t -c "$tmp/empty.ini"
expect_line "no backend" "^$tmp/empty.ini:[0-9]+: .*no backend"

# Environment overrides win over the file, and their errors name the variable.
expect_run "env backends" 0 env WSBAL_BACKENDS=ws://127.0.0.1:1 "$WSBAL" -t -c "$tmp/empty.ini"
expect_run "env bad value" 1 env WSBAL_LISTEN_ADDRESS=nowhere "$WSBAL" -t -c "$good"
expect_line "env bad value" 'WSBAL_LISTEN_ADDRESS'
expect_run "env admin needs token" 1 env WSBAL_ADMIN_ADDRESS=0.0.0.0:8081 "$WSBAL" -t -c "$good"
expect_run "env admin with token" 0 env WSBAL_ADMIN_ADDRESS=0.0.0.0:8081 WSBAL_ADMIN_TOKEN=s3cret "$WSBAL" -t -c "$good"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
