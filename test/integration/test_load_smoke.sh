#!/usr/bin/env bash
# wsbal-load against wsbal-echo: every mode runs about a second and must report work and no errors;
# a backend that corrupts echoes must be caught; non-loopback targets are refused.
set -u
: "${WSBAL_ECHO:?path of the built wsbal-echo}" "${WSBAL_LOAD:?path of the built wsbal-load}"
PY=/usr/bin/python3

passed=0 failed=0
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# start_server NAME CMD...: runs CMD in the background and sets $port from its "listening on" line.
start_server() {
  local name=$1
  shift
  "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" &
  pids+=($!)
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$tmp/$name.out")
    [ -n "$port" ] && return 0
    sleep 0.05
  done
  echo "FAIL: $name did not start: $(cat "$tmp/$name.err")"
  exit 1
}

# check NAME FILE PYTHON-EXPR: the expression, over the JSON result d, must be true.
check() {
  local name=$1 file=$2 expr=$3
  if "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($expr) else 1)" "$file" 2>/dev/null; then
    ok
  else
    fail "$name: ($expr) is false for: $(cat "$file")"
  fi
}

# run NAME WANT_STATUS ARGS...: runs wsbal-load and keeps its JSON line in $tmp/NAME.json.
run() {
  local name=$1 want=$2
  shift 2
  timeout 60 "$WSBAL_LOAD" --json-only "$@" > "$tmp/$name.json" 2> "$tmp/$name.stderr"
  local got=$?
  if [ "$got" -eq "$want" ]; then ok; else fail "$name: exit $got, want $want: $(cat "$tmp/$name.stderr")"; fi
}

clean='d["error_total"] == 0 and d["mismatches"] == 0 and all(v == 0 for v in d["errors"].values())'

# The pure parts: histogram buckets and percentiles, payload checks.
if out=$("$WSBAL_LOAD" --self-test) && [ "$out" = "$(printf '%s' "$out" | grep -E '^self-test: [0-9]+ passed, 0 failed$')" ]; then ok; else fail "self-test: $out"; fi

start_server echo "$WSBAL_ECHO" --port 0 --id smoke
url="ws://127.0.0.1:$port/smoke"

run echo 0 --url "$url" --mode echo -c 4 -d 4 -s 200 -t 1 --warmup 0.2
check echo "$tmp/echo.json" "$clean"
check echo "$tmp/echo.json" 'd["messages"] > 100 and d["latency_us"]["count"] > 100 and d["connections_established"] == 4 and d["open_at_end"] == 4'
check echo "$tmp/echo.json" '0 < d["latency_us"]["p50"] <= d["latency_us"]["p99"] <= d["latency_us"]["max"]'

# Messages larger than the echo's read buffer come back in fragments, text must stay text.
run echo_text_big 0 --url "$url" --mode echo --text -c 2 -d 2 -s 150000 -t 1 --warmup 0
check echo_text_big "$tmp/echo_text_big.json" "$clean"
check echo_text_big "$tmp/echo_text_big.json" 'd["messages"] > 10 and d["binary"] is False'

run rate 0 --url "$url" --mode rate -r 2000 -c 5 -t 1 --warmup 0.2
check rate "$tmp/rate.json" "$clean"
check rate "$tmp/rate.json" 'd["sent"] == 2000 and d["messages"] == 2000 and d["latency_us"]["count"] == 2000'

run idle 0 --url "ws://localhost:$port/" --mode idle -c 50 -t 1 --ping-interval 0.25
check idle "$tmp/idle.json" "$clean"
check idle "$tmp/idle.json" 'd["open_at_start"] == 50 and d["open_at_end"] == 50 and d["pongs"] >= 150'

run connect 0 --url "$url" --mode connect -c 4 -t 1 --warmup 0.2
check connect "$tmp/connect.json" "$clean"
check connect "$tmp/connect.json" 'd["cycles"] > 10 and d["handshake_latency_us"]["count"] > 10'

# Storm: every session at once (no cap on handshakes in flight) over two processes; one handshake
# latency per upgrade, and the window (the storm) ends only once both processes are all up.
run storm 0 --url "$url" --mode storm -c 400 --processes 2 --source 127.0.5.0/24 -t 0.3
check storm "$tmp/storm.json" "$clean"
check storm "$tmp/storm.json" 'd["in_flight"] == 0 and d["connections_established"] == 400 and d["open_at_end"] == 400 and d["handshake_latency_us"]["count"] == 400'
check storm "$tmp/storm.json" '0 < d["handshake_latency_us"]["max"] <= d["window_s"] * 1e6 and d["connect_s"] > 0 and d["handshakes_per_s"] > 0'
run storm_capped 0 --url "$url" --mode storm -c 50 --in-flight 5 -t 0.2
check storm_capped "$tmp/storm_capped.json" "$clean"
check storm_capped "$tmp/storm_capped.json" 'd["in_flight"] == 5 and d["connections_established"] == 50'

# Several processes from a source range: the merged result counts every session and pong once,
# and SIGUSR1 pings every open session (the first child's pings and the others' add up).
run procs 0 --url "$url" --mode idle -c 60 --processes 3 --source 127.0.3.0/26 -t 1 --ping-interval 0.4
check procs "$tmp/procs.json" "$clean"
check procs "$tmp/procs.json" 'd["processes"] == 3 and d["connections_established"] == 60 and d["open_at_start"] == 60 and d["open_at_end"] == 60 and d["pongs"] >= 120 and d["latency_us"]["count"] == d["pongs"] and d["connect_s"] > 0'
"$WSBAL_LOAD" --json-only --url "$url" --mode idle -c 40 --processes 2 --source 127.0.4.1-127.0.4.9 -t 30 --ping-spread 0.5 > "$tmp/usr1.json" 2> "$tmp/usr1.stderr" &
lp=$!
pids+=("$lp")
# The sessions leave from 127.0.4.x: once all 40 are there, one ping round (at the window's start
# if the upgrades are still under way) spread over half a second, then the end of the run.
for _ in $(seq 200); do
  [ "$(ss -Htn state established src 127.0.4.0/24 | wc -l)" -ge 40 ] && break
  sleep 0.05
done
kill -USR1 "$lp"
sleep 1
kill -TERM "$lp"
wait "$lp"
st=$?
if [ "$st" -eq 0 ]; then ok; else fail "usr1: exit $st: $(cat "$tmp/usr1.stderr")"; fi
check usr1 "$tmp/usr1.json" "$clean"
check usr1 "$tmp/usr1.json" 'd["pongs"] == 40 and d["open_at_end"] == 40 and d["window_s"] < 20'

# A closed port: every attempt is a counted connect error, and the exit status says so.
closed_port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run refused 1 --url "ws://127.0.0.1:$closed_port/" --mode echo -c 3 -t 1
check refused "$tmp/refused.json" 'd["errors"]["connect"] == 3 and d["connections_failed"] == 3 and d["messages"] == 0'

# A backend that damages one byte of every fifth echo: each damaged message is a mismatch.
cat > "$tmp/corrupt.py" <<'PY'
import asyncio, sys
import websockets

async def echo(ws, path=None):
    n = 0
    async for msg in ws:
        n += 1
        if n % 5 == 0:
            b = bytearray(msg)
            b[len(b) // 2] ^= 0x20
            msg = bytes(b)
        await ws.send(msg)

async def main():
    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        print("listening on 127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
PY
start_server corrupt "$PY" "$tmp/corrupt.py"
run corrupt 1 --url "ws://127.0.0.1:$port/" --mode rate -r 500 -c 2 -t 1 --warmup 0
check corrupt "$tmp/corrupt.json" 'd["mismatches"] > 0 and d["messages"] + d["mismatches"] >= 400'

# Only loopback targets; bad options are usage errors.
for bad in "ws://10.1.2.3:80/" "ws://example.com:80/" "wss://10.1.2.3:443/" "http://127.0.0.1:1/" "127.0.0.1:1"; do
  "$WSBAL_LOAD" --url "$bad" --mode echo > /dev/null 2>&1
  st=$?
  if [ "$st" -eq 2 ]; then ok; else fail "$bad: exit $st, want 2"; fi
done
for args in "--mode rate" "--mode echo -t 601" "--mode idle --source 10.0.0.1-10.0.0.5" "--mode idle --source 127.0.0.1/4" "--mode idle -c 2 --processes 3" "--mode idle --processes 65" "--mode echo -s 15" "--mode echo --text -s 31" "--mode storm --warmup 1" "--mode storm --in-flight x" "--mode nope"; do
  # shellcheck disable=SC2086
  "$WSBAL_LOAD" --url "$url" $args > /dev/null 2>&1
  st=$?
  if [ "$st" -eq 2 ]; then ok; else fail "$args: exit $st, want 2"; fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
