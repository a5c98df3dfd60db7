# Sourced by benchmarks/*.sh: start the local Gemini stub (tests/stubs/gemini_stub.py) and wait until it
# answers. usage: start_gemini_stub <python> <port> <responder> <log>; sets STUB_PID, and the caller
# stops the stub (a trap on EXIT).
start_gemini_stub() {
  "$1" -m tests.stubs.gemini_stub --port "$2" --responder "$3" >"$4" 2>&1 &
  STUB_PID=$!
  "$1" - "http://127.0.0.1:$2" "$4" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(sys.argv[1] + "/stub/stats", timeout=1).read()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(f"the Gemini stub did not come up at {sys.argv[1]} (see {sys.argv[2]})")
PY
}
