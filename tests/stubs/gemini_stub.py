"""A local server speaking enough of the Gemini REST API (and of OpenAI chat completions) for the real
clients, with faults injected by script or at seeded random rates.

google-genai 3.x (API key, custom base_url) sends `POST {base_url}/v1beta/models/{model}:generateContent`
with `{"contents": [{"role": "user", "parts": [{"text": ...}]}], "generationConfig": {...},
"systemInstruction": {...}}` and reads `candidates[0].content.parts[*].text`. `OpenAIStub` serves
`POST /v1/chat/completions` with the same machinery.

The answer to a request comes from a `responder(prompt, request_json)` callback (generic: rephrase and
judge tests both use it), unless a fault applies. Each request belongs to an item, named by
`item_key(prompt)` (default: the whole prompt; `marker_key` reads a `[[id]]` marker). Items are matched
exactly, never by substring, so item "q1" does not catch "q10". A fault is chosen per request, first
that applies:
1. the item's script, in order of arrival: `stub.script("q1", ["429", "500"])` fails q1's first two
   requests;
2. `default_fault(prompt, n)`, n counting the item's requests from 0;
3. seeded random faults (`fault_rates`, e.g. DEFAULT_FAULT_RATES): drawn from a hash of (seed, item, n),
   so each item sees the same faults whatever order or concurrency the requests arrive in.
Every request is logged with its item key and the fault it got ("ok" when it was answered), so a test
can count requests and retries per item.

Usage:
    with GeminiStub(responder=lambda prompt, body: {"answer": 1}) as stub:
        client = genai.Client(api_key="test", http_options=HttpOptions(base_url=stub.url))

As a server of its own (the paper rehearsal, benchmarks/rehearse_paper.sh), until SIGTERM or SIGINT:
    python -m tests.stubs.gemini_stub --port 18765 --responder rehearsal
`GET /stub/stats` then returns the request counts: total, answered, faults and per kind of prompt
(tests/stubs/rehearsal_responder.py: rephrase, judge, abstention).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import socket
import struct
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A responder returns the model's JSON answer (dict/list -> serialised) or raw text (str, sent as is).
Responder = Callable[[str, dict], Any]

FAULTS = (
    "ok",
    "429",  # rate limited, with a Retry-After header
    "500",
    "503",
    "timeout",  # the reply comes after the client has given up
    "reset",  # the connection is dropped (TCP RST) without a reply
    "malformed",  # 200, the model's text is broken JSON
    "invalid_schema",  # 200, the model's text is JSON of the wrong shape
    "empty",  # 200, the model's text is empty
    "non_json",  # 200 whose body is not JSON at all (a proxy's HTML error page)
    "empty_body",  # 200 with no body
    "echo_auth_400",  # 400 whose error message echoes the request's auth header (a leak trap)
    "echo_auth_500",  # 500, likewise: a client that logs error bodies would leak the key
)
# The random mode's defaults (issue #14): 30% 429 with Retry-After, 10% 5xx, 5% malformed JSON, 2%
# dropped connections or timeouts, and 200s that carry no usable JSON. About half of all requests fail.
DEFAULT_FAULT_RATES: dict[str, float] = {
    "429": 0.30,
    "500": 0.05,
    "503": 0.05,
    "malformed": 0.05,
    "reset": 0.01,
    "timeout": 0.01,
    "non_json": 0.02,
    "empty_body": 0.01,
    "empty": 0.01,
}
_MARKER = re.compile(r"\[\[([^\[\]]+)\]\]")


def marker_key(prompt: str) -> str:
    """The item id in a `[[id]]` marker (test items carry one in their question), else the prompt."""
    m = _MARKER.search(prompt)
    return m.group(1) if m else prompt


@dataclass
class StubRequest:
    path: str
    prompt: str
    body: dict
    fault: str  # what the request got: "ok" (answered) or the fault injected
    headers: dict[str, str] = field(default_factory=dict)
    key: str = ""  # the item it belongs to
    at: float = field(default_factory=time.monotonic)


class _Handler(BaseHTTPRequestHandler):
    server: _Server  # type: ignore[assignment]

    def log_message(self, *args: Any) -> None:  # keep test output clean
        return

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path.split("?")[0] == "/stub/stats":
            self._send(200, self.server.stub.summary())
        else:
            self._send(
                404, {"error": {"code": 404, "message": f"no route {self.path}", "status": "NOT_FOUND"}}
            )

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        stub = self.server.stub
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send(400, {"error": {"code": 400, "message": "bad JSON", "status": "INVALID_ARGUMENT"}})
            return
        if not stub.matches(self.path):
            self._send(
                404, {"error": {"code": 404, "message": f"no route {self.path}", "status": "NOT_FOUND"}}
            )
            return
        prompt = stub.extract_prompt(body)
        key = stub.item_key(prompt)
        fault = stub.next_fault(key, prompt)
        headers = {k.lower(): v for k, v in self.headers.items()}
        stub.record(StubRequest(self.path, prompt, body, fault, headers, key))
        if fault in ("429", "500", "503"):
            code = int(fault)
            status = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}[code]
            extra = (
                {"Retry-After": str(stub.retry_after)} if code == 429 and stub.retry_after is not None else {}
            )
            self._send(
                code, {"error": {"code": code, "message": f"injected {code}", "status": status}}, extra
            )
            return
        if fault in ("echo_auth_400", "echo_auth_500"):
            code = int(fault[-3:])
            auth = headers.get("x-goog-api-key") or headers.get("authorization") or ""
            message = f"invalid credentials: x-goog-api-key: {auth} (Authorization: {auth})"
            status = "INVALID_ARGUMENT" if code == 400 else "INTERNAL"
            self._send(code, {"error": {"code": code, "message": message, "status": status}})
            return
        if fault == "reset":
            # SO_LINGER 0: close() sends RST, so the client sees a dropped connection, not a reply
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if fault == "timeout":
            time.sleep(stub.timeout_sleep_s)  # longer than the client's timeout
            payload = stub.wrap_text(json.dumps(stub.call_responder(prompt, body)))
            self._send(200, payload, quiet=True)
            return
        if fault == "non_json":
            self._send_raw(200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
            return
        if fault == "empty_body":
            self._send_raw(200, b"", "application/json")
            return
        if fault == "malformed":
            text = '{"not": "closed"'
        elif fault == "invalid_schema":
            text = json.dumps({"unexpected_field": True})
        elif fault == "empty":
            text = ""
        else:
            answer = stub.call_responder(prompt, body)
            text = answer if isinstance(answer, str) else json.dumps(answer)
        self._send(200, stub.wrap_text(text))

    def _send(self, code: int, payload: dict, headers: Mapping[str, str] = {}, quiet: bool = False) -> None:  # noqa: B006
        self._send_raw(code, json.dumps(payload).encode(), "application/json", headers, quiet)

    def _send_raw(
        self,
        code: int,
        data: bytes,
        ctype: str,
        headers: Mapping[str, str] = {},
        quiet: bool = False,  # noqa: B006
    ) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            if not quiet:
                raise

    def finish(self) -> None:
        if self.connection.fileno() == -1:  # closed on purpose ("reset"): nothing left to flush
            return
        super().finish()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # many clients in flight at once must not see refused connections

    def __init__(self, stub: _BaseStub, port: int = 0):
        self.stub = stub
        super().__init__(("127.0.0.1", port), _Handler)  # port 0: a free port chosen by the OS


class _BaseStub:
    """Threaded server + fault choice + request log; subclasses define the wire format."""

    route: re.Pattern[str]

    def __init__(
        self,
        responder: Responder | None = None,
        default_fault: Callable[[str, int], str] | None = None,
        timeout_sleep_s: float = 2.0,
        item_key: Callable[[str], str] | None = None,
        fault_rates: Mapping[str, float] | None = None,
        fault_seed: int = 0,
        retry_after: float | str | None = 0,
        port: int = 0,
        kind_of: Callable[[str], str] | None = None,
    ):
        self.kind_of = kind_of or (lambda prompt: "request")  # how summary() groups requests
        self.responder = responder or (lambda prompt, body: {"echo": prompt})
        self.default_fault = default_fault  # (prompt, n-th request for this item) -> fault name
        self.timeout_sleep_s = timeout_sleep_s
        self.item_key = item_key or (lambda prompt: prompt)
        self.fault_rates: dict[str, float] = {}
        self.fault_seed = fault_seed
        self.retry_after = retry_after  # the Retry-After header sent with every 429 (None: no header)
        self.random_faults(fault_rates, fault_seed)
        self.requests: list[StubRequest] = []
        self.counts: Counter[str] = Counter()  # requests per item key
        self._scripts: dict[str, list[str]] = defaultdict(list)
        self._lock = threading.Lock()
        self._server = _Server(self, port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle
    def start(self) -> _BaseStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- faults
    def script(self, key: str, faults: Iterable[str]) -> None:
        """Fail the next requests of item `key` (matched exactly) in the given ways, in order."""
        faults = list(faults)
        bad = [f for f in faults if f not in FAULTS]
        if bad:
            raise ValueError(f"unknown faults {bad}; expected some of {FAULTS}")
        with self._lock:
            self._scripts[key].extend(faults)

    def random_faults(self, rates: Mapping[str, float] | None, seed: int = 0) -> None:
        """Inject faults at these rates (None or {} switches the random mode off)."""
        rates = dict(rates or {})
        bad = [f for f in rates if f not in FAULTS or f == "ok"]
        if bad or any(r < 0 for r in rates.values()) or sum(rates.values()) > 1:
            raise ValueError(
                f"fault rates must be faults in {FAULTS[1:]} with rates summing to <= 1: {rates}"
            )
        self.fault_rates, self.fault_seed = rates, seed

    def _draw(self, key: str, n: int) -> str:
        digest = hashlib.sha256(f"{self.fault_seed}|{key}|{n}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        for fault, rate in self.fault_rates.items():
            if u < rate:
                return fault
            u -= rate
        return "ok"

    def next_fault(self, key: str, prompt: str = "") -> str:
        with self._lock:
            n = self.counts[key]
            self.counts[key] += 1
            if self._scripts.get(key):
                return self._scripts[key].pop(0)
        if self.default_fault:
            return self.default_fault(prompt, n)
        return self._draw(key, n) if self.fault_rates else "ok"

    def record(self, req: StubRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def call_responder(self, prompt: str, body: dict) -> Any:
        return self.responder(prompt, body)

    # --- inspection
    @property
    def total(self) -> int:
        with self._lock:
            return len(self.requests)

    def count(self, key: str) -> int:
        """Requests made for item `key` (exact match)."""
        with self._lock:
            return sum(1 for r in self.requests if r.key == key)

    def outcomes(self) -> dict[str, list[str]]:
        """Per item, what each of its requests got, in order of arrival."""
        with self._lock:
            out: dict[str, list[str]] = defaultdict(list)
            for r in sorted(self.requests, key=lambda r: r.at):
                out[r.key].append(r.fault)
            return dict(out)

    def faults_injected(self) -> Counter[str]:
        with self._lock:
            return Counter(r.fault for r in self.requests if r.fault != "ok")

    def summary(self) -> dict[str, Any]:
        """Request counts: total, answered ("ok"), faults injected, and per kind of prompt (kind_of)."""
        with self._lock:
            reqs = list(self.requests)
        kinds: Counter[str] = Counter(self.kind_of(r.prompt) for r in reqs)
        answered: Counter[str] = Counter(self.kind_of(r.prompt) for r in reqs if r.fault == "ok")
        return {
            "total": len(reqs),
            "ok": sum(answered.values()),
            "faults": dict(Counter(r.fault for r in reqs if r.fault != "ok")),
            "kinds": dict(kinds),
            "kinds_ok": dict(answered),
        }

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.counts.clear()

    # --- wire format
    def matches(self, path: str) -> bool:
        return bool(self.route.fullmatch(path.split("?")[0]))

    def extract_prompt(self, body: dict) -> str:
        raise NotImplementedError

    def wrap_text(self, text: str) -> dict:
        raise NotImplementedError


class GeminiStub(_BaseStub):
    route = re.compile(r"/v1(beta|alpha)?/models/(?P<model>[^/:]+):generateContent")

    def extract_prompt(self, body: dict) -> str:
        parts = [p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", [])]
        return "\n".join(parts)

    def wrap_text(self, text: str) -> dict:
        return {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
            "modelVersion": "stub",
        }


class OpenAIStub(_BaseStub):
    route = re.compile(r"(/v1)?/chat/completions")

    def extract_prompt(self, body: dict) -> str:
        return "\n".join(m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user")

    def wrap_text(self, text: str) -> dict:
        return {
            "id": "stub",
            "object": "chat.completion",
            "model": "stub",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
        }


def main(argv: list[str] | None = None) -> None:
    """Serve the Gemini API (and OpenAI chat completions) on a fixed port until SIGTERM or SIGINT."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--api", choices=("gemini", "openai"), default="gemini")
    ap.add_argument("--responder", choices=("rehearsal", "echo"), default="rehearsal")
    args = ap.parse_args(argv)
    from tests.stubs import rehearsal_responder as rr

    responder = rr.respond if args.responder == "rehearsal" else None
    cls = GeminiStub if args.api == "gemini" else OpenAIStub
    stub = cls(responder=responder, port=args.port, kind_of=rr.kind)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stub.start()
    print(f"{args.api} stub ({args.responder}) serving on {stub.url}", flush=True)
    stop.wait()
    print(json.dumps(stub.summary()), flush=True)
    stub.stop()


if __name__ == "__main__":
    main()
