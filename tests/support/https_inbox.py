"""An HTTPS endpoint that records what SNS delivers to it: the stand-in for an HTTPS
subscriber such as Amazon Q Developer in chat applications' (tests/support/https_inbox.rs).

usage: https_inbox.py CERT KEY

Listens on a free port of 127.0.0.1 with CERT and KEY, prints `listening PORT`, then
one JSON line per POST ({"path", "headers", "body"}) before answering 200. Exits when
its standard input closes (the test process ended, however it ended).
"""

import json
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


class Inbox(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        line = json.dumps(
            {"path": self.path, "headers": dict(self.headers.items()), "body": body}
        )
        with LOCK:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    cert, key = sys.argv[1], sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Inbox)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdout.write(f"listening {server.server_address[1]}\n")
    sys.stdout.flush()
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main()
