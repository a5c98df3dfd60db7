"""A scriptable local server speaking enough of the Gemini REST API for the real google-genai client.

google-genai 3.x (API key, custom base_url) sends `POST {base_url}/v1beta/models/{model}:generateContent`
with `{"contents": [{"role": "user", "parts": [{"text": ...}]}], "generationConfig": {...},
"systemInstruction": {...}}` and reads `candidates[0].content.parts[*].text`.

The answer to a request comes from a `responder(prompt, request_json)` callback (generic: rephrase and
judge tests both use it), unless a scripted fault applies. Faults are scripted per prompt substring, in
order of arrival: `stub.script("question A", ["429", "500", "timeout", "malformed", "ok"])` makes the
first five requests whose prompt contains "question A" fail in those ways; later ones succeed.
`OpenAIStub` serves `POST /v1/chat/completions` with the same machinery.

Usage:
    with GeminiStub(responder=lambda prompt, body: {"answer": 1}) as stub:
        client = genai.Client(api_key="test", http_options=HttpOptions(base_url=stub.url))
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A responder returns the model's JSON answer (dict/list -> serialised) or raw text (str, sent as is).
Responder = Callable[[str, dict], Any]

FAULTS = ("ok", "429", "500", "503", "timeout", "malformed", "invalid_schema", "empty")


@dataclass
class StubRequest:
    path: str
    prompt: str
    body: dict
    fault: str
    headers: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


class _Handler(BaseHTTPRequestHandler):
    server: _Server  # type: ignore[assignment]

    def log_message(self, *args: Any) -> None:  # keep test output clean
        return

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
        fault = stub.next_fault(prompt)
        stub.record(
            StubRequest(self.path, prompt, body, fault, {k.lower(): v for k, v in self.headers.items()})
        )
        if fault in ("429", "500", "503"):
            code = int(fault)
            status = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}[code]
            self._send(code, {"error": {"code": code, "message": f"scripted {code}", "status": status}})
            return
        if fault == "timeout":
            time.sleep(stub.timeout_sleep_s)  # longer than the client's timeout
            payload = stub.wrap_text(json.dumps(stub.call_responder(prompt, body)))
            self._send(200, payload, quiet=True)
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

    def _send(self, code: int, payload: dict, quiet: bool = False) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            if not quiet:
                raise


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, stub: _BaseStub):
        self.stub = stub
        super().__init__(("127.0.0.1", 0), _Handler)  # port 0: a free port chosen by the OS


class _BaseStub:
    """Threaded server + fault script + request log; subclasses define the wire format."""

    route: re.Pattern[str]

    def __init__(
        self,
        responder: Responder | None = None,
        default_fault: Callable[[str, int], str] | None = None,
        timeout_sleep_s: float = 2.0,
    ):
        self.responder = responder or (lambda prompt, body: {"echo": prompt})
        self.default_fault = default_fault  # (prompt, n-th request for this prompt) -> fault name
        self.timeout_sleep_s = timeout_sleep_s
        self.requests: list[StubRequest] = []
        self.counts: Counter[str] = Counter()  # requests per exact prompt
        self._scripts: dict[str, list[str]] = defaultdict(list)
        self._lock = threading.Lock()
        self._server = _Server(self)
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

    # --- scripting
    def script(self, prompt_contains: str, faults: Iterable[str]) -> None:
        faults = list(faults)
        bad = [f for f in faults if f not in FAULTS]
        if bad:
            raise ValueError(f"unknown faults {bad}; expected some of {FAULTS}")
        with self._lock:
            self._scripts[prompt_contains].extend(faults)

    def next_fault(self, prompt: str) -> str:
        with self._lock:
            n = self.counts[prompt]
            self.counts[prompt] += 1
            for needle, queue in self._scripts.items():
                if needle in prompt and queue:
                    return queue.pop(0)
        return self.default_fault(prompt, n) if self.default_fault else "ok"

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

    def count(self, prompt_contains: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if prompt_contains in r.prompt)

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
