"""Webhooks end to end on one machine: a receiver that checks every signature, an endpoint for it, and a job
that names its own URL too.

    pip install standardwebhooks        # the receiver's side: Standard Webhooks' reference library
    python examples/webhook_receiver.py

The receiver runs on loopback, so private targets are allowed here (``allow_private_urls``); a real receiver is
a public URL and needs no such setting. See docs/webhooks.md.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

from batchyard import Batchyard

received: list[tuple[str, bytes, dict[str, str]]] = []


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.append((self.path, body, dict(self.headers)))
        self.send_response(204)  # answer at once; do the work after
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_address[1]}"

app = Batchyard(demo_handlers=True, allow_private_urls=True)
endpoint, endpoint_secret = app.webhooks.create(url=f"{base}/endpoint", events=["job.completed"])
print(f"endpoint {endpoint.id}: {', '.join(endpoint.events)}")

job = app.submit("echo", [{"n": 1}, {"n": 2}], webhook_url=f"{base}/job")  # this job's own URL too
view = job.wait()  # runs it here when no worker is running, and sends its events before returning
print(f"{job.id} {view.job.status}")

_, default_secret = app.webhooks.default_secret()  # what signs jobs' own webhook_url
for path, body, headers in sorted(received):
    secret = endpoint_secret if path == "/endpoint" else default_secret
    event = Webhook(secret).verify(body, headers)  # raises if the signature is wrong or the message too old
    whose = "the endpoint's secret" if path == "/endpoint" else "the owner's default secret"
    counts = event["data"]["counts"]
    print(f"{event['type']} {event['data']['id']} ({counts['succeeded']} succeeded) verified with {whose}")
server.shutdown()
app.close()
