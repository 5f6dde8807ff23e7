"""A loopback HTTP endpoint that records request bodies and answers 400, standing in for a model API.

No model is reachable in tests, but what a CLI *sends* shows what it loaded: the instructions in the
system prompt, the skills and tools it announces. The 400 makes the CLI give up at once instead of retrying.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Capture:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.got = threading.Event()
        self.url = ""

    def text(self) -> str:
        return b"\n".join(self.bodies).decode(errors="replace")


@contextmanager
def capture_server() -> Iterator[Capture]:
    capture = Capture()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            capture.bodies.append(self.rfile.read(length))
            capture.got.set()
            body = b'{"error": {"type": "invalid_request_error", "message": "actant test endpoint", "code": 400}}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    capture.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield capture
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
