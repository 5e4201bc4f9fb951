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

# Issue 12 item 13: [wsbal] group without user would keep uid 0: refused at the group's line.
printf '[wsbal]\ngroup = nogroup\n[backend:one]\nurl = ws://127.0.0.1:19001\n' > "$tmp/group.ini"
expect_run "group without user" 1 "$WSBAL" -t -c "$tmp/group.ini"
expect_line "group without user" "^$tmp/group.ini:2: \[wsbal\] group is set but user is not"
printf '[wsbal]\nuser = nobody\ngroup = nogroup\n[backend:one]\nurl = ws://127.0.0.1:19001\n' \
  > "$tmp/user_group.ini"
expect_run "group with user" 0 "$WSBAL" -t -c "$tmp/user_group.ini"

# Issue 12 item 18: -t finds what a start would, short of binding: every backend host that does
# not resolve (.invalid never does, RFC 6761), users and groups the system lacks, a table the
# segment cannot hold.
cat > "$tmp/unresolved.ini" <<'INI'
[listen]
address = 127.0.0.1:18080
[admin]
address = off
[backend:ok]
url = ws://127.0.0.1:19001
[backend:one]
url = ws://wsbal-test-one.invalid:19001
[backend:two]
url = ws://wsbal-test-two.invalid:19002
INI
expect_run "unresolvable hosts" 1 "$WSBAL" -t -c "$tmp/unresolved.ini"
expect_line "unresolvable host one" "^$tmp/unresolved.ini:7: backend one: cannot resolve wsbal-test-one.invalid"
expect_line "unresolvable host two" "^$tmp/unresolved.ini:9: backend two: cannot resolve wsbal-test-two.invalid"
# ... which is what the start stops on (exit 3, start-up failure), on a port of its own.
port=$(cd "$(dirname "$0")" && /usr/bin/python3 -c 'from wsbtest import free_port; print(free_port())')
sed "s/127.0.0.1:18080/127.0.0.1:$port/" "$tmp/unresolved.ini" > "$tmp/unresolved_start.ini"
expect_run "the start stops on them too" 3 timeout 30 "$WSBAL" -c "$tmp/unresolved_start.ini"
expect_line "the start stops on them too" "cannot resolve wsbal-test-one.invalid"
printf '[listen]\naddress = wsbal-test-listen.invalid:18080\n[backend:one]\nurl = ws://127.0.0.1:19001\n' \
  > "$tmp/listen.ini"
expect_run "unresolvable listen address" 1 "$WSBAL" -t -c "$tmp/listen.ini"
expect_line "unresolvable listen address" "^$tmp/listen.ini:2: \[listen\] address: cannot resolve wsbal-test-listen.invalid"
printf '[wsbal]\nuser = wsbal-no-such-user\n[backend:one]\nurl = ws://127.0.0.1:19001\n' > "$tmp/user.ini"
expect_run "unknown user" 1 "$WSBAL" -t -c "$tmp/user.ini"
expect_line "unknown user" "^$tmp/user.ini:2: \[wsbal\] user wsbal-no-such-user: no such user"
printf '[wsbal]\nuser = nobody\ngroup = wsbal-no-such-group\n[backend:one]\nurl = ws://127.0.0.1:19001\n' \
  > "$tmp/grp.ini"
expect_run "unknown group" 1 "$WSBAL" -t -c "$tmp/grp.ini"
expect_line "unknown group" "^$tmp/grp.ini:3: \[wsbal\] group wsbal-no-such-group: no such group"
# A list longer than the segment's 1 KiB (only the environment has no line limit).
origins=$(printf 'https://origin-%04d.example,' $(seq 1 60))
expect_run "list too long for the segment" 1 env "WSBAL_LISTEN_ALLOWED_ORIGINS=$origins" "$WSBAL" -t -c "$good"
expect_line "list too long for the segment" "^$good:0: \[listen\] allowed_origins: list longer than 1023 bytes"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
