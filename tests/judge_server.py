"""A scripted OpenAI-compatible chat server on 127.0.0.1 for judge and API-backend tests.

The model answer inside the prompt steers the reply: RATE=k → "Rating: k"; NORATING; MULTI (two ratings);
RAW=<text> → that exact reply (`reply_fn`/`chat_fn` may return a whole choice, a dict); NOCHOICES → a 200 reply with an empty choices list; FAIL500:n / FAIL429:n / SLOW:n → the first n calls for that prompt fail with a
500, a 429, or answer after `slow_seconds` (a client timeout). Calls are counted per prompt."""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JudgeServer:
    def __init__(self, slow_seconds: float = 2.0):
        self.calls: dict[str, int] = {}
        self.total = 0
        self.slow_seconds = slow_seconds
        self.lock = threading.Lock()
        self.reply_fn = None  # optional: prompt → reply text (overrides the scripting)
        self.chat_fn = None  # optional: full request body → reply text (a model behind the API)
        self.bodies: list[dict] = []
        self.limited_at: list[float] = []  # when each scripted 429 went out
        #: refuse `max_tokens` as OpenAI does for its reasoning models (a 400 naming the parameter)
        self.refuse_max_tokens = False
        #: as OpenAI's reasoning models: a temperature other than 1, or any top_p, is refused
        self.refuse_sampling = False
        #: appended to the refusal's message (a server's own words, which the client prints)
        self.refusal_text = ""
        #: headers a scripted 429 carries (`{"retry-after": "0.5"}`: how long a rate limit asks the client to wait)
        self.limit_headers: dict[str, str] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "judge", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                content = body["messages"][-1]["content"]
                prompt = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content if p.get("type") == "text")
                key = hashlib.sha256(prompt.encode()).hexdigest()
                with server.lock:
                    server.bodies.append(body)
                    n = server.calls.get(key, 0) + 1
                    server.calls[key] = n
                    server.total += 1
                if server.refuse_max_tokens and "max_tokens" in body:
                    return self._send(400, {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                                                      "'max_completion_tokens' instead.", "type": "invalid_request_error", "param": "max_tokens",
                                                      "code": "unsupported_parameter"}})
                if server.refuse_sampling and body.get("temperature", 1) != 1:
                    return self._send(400, {"error": {"message": f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. "
                                                      "Only the default (1) value is supported." + server.refusal_text, "type": "invalid_request_error", "param": "temperature",
                                                      "code": "unsupported_value"}})
                if server.refuse_sampling and "top_p" in body:
                    return self._send(400, {"error": {"message": "Unsupported parameter: 'top_p' is not supported with this model.",
                                                      "type": "invalid_request_error", "param": "top_p", "code": "unsupported_parameter"}})
                answer = prompt.split("### LMM Response to Evaluate", 1)[-1]
                for kind in ("FAIL500", "FAIL429", "SLOW"):
                    m = re.search(kind + r":(\d+)", answer)
                    if m and n <= int(m.group(1)):
                        if kind == "SLOW":
                            time.sleep(server.slow_seconds)
                        else:
                            if kind == "FAIL500":
                                return self._send(500, {"error": {"message": "scripted FAIL500"}})
                            with server.lock:
                                server.limited_at.append(time.monotonic())
                            return self._send(429, {"error": {"message": "scripted FAIL429"}}, server.limit_headers)
                if "NOCHOICES" in answer:
                    return self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "judge", "choices": []})
                if server.chat_fn is not None:
                    reply = server.chat_fn(body)
                elif server.reply_fn is not None:
                    reply = server.reply_fn(prompt)
                elif (m := re.search(r"RAW=(.*?)(?:\n|$)", answer)):
                    reply = m.group(1)
                elif "NORATING" in answer:
                    reply = "The answer looks fine but I will not rate it."
                elif "MULTI" in answer:
                    reply = "Rating: 2 for the first part, Rating: 5 overall."
                else:
                    m = re.search(r"RATE=(\d)", answer)
                    reply = f"The response is judged. Rating: {m.group(1) if m else 4}, done."
                # a dict is a whole choice: {"message": {...}, "finish_reason": ...} (a reasoning parser's reply)
                choice = reply if isinstance(reply, dict) else {"message": {"content": reply}, "finish_reason": "stop"}
                words = len(str(choice["message"].get("content") or "").split())
                self._send(200, {
                    "id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "judge"),
                    "choices": [{"index": 0, "message": {"role": "assistant", **choice["message"]}, "finish_reason": choice.get("finish_reason", "stop")}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": words, "total_tokens": 1},
                })

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "JudgeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
