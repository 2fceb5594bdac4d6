"""Files served over HTTP on 127.0.0.1 (the host the tests allow) for file-link deliveries,
and the CSV body such a link points at."""

from __future__ import annotations

import csv
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileHost:
    """Serves `files` (path -> body; 404 for any other path) and records each requested path.

    Two paths act out what a real host may do: `/slow...` answers after 3 s, and
    `/redirect-to/<url>` answers 302 to `<url>`.
    """

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files: dict[str, bytes] = {} if files is None else files
        self.requests: list[str] = []
        files, requests = self.files, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                if self.path.startswith("/redirect-to/"):
                    self.send_response(302)
                    self.send_header("Location", self.path[len("/redirect-to/") :])
                    self.end_headers()
                    return
                if self.path.startswith("/slow"):
                    time.sleep(3)
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FileHost:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def csv_bytes(records: list[dict]) -> bytes:
    """The records as CSV with a header of every key seen (missing values empty)."""
    fields = list(dict.fromkeys(key for record in records for key in record))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode()
