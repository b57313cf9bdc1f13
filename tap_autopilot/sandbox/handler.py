"""HTTP front of the sandbox: routing, auth, injected faults, admin endpoints.

/_admin requests are never counted nor faulted (faults.py says which API requests are).
"""

import contextlib
import json
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from .faults import hit

_clock = time.monotonic  # the latency's clock (a test replaces it)

API_PREFIX = "/v1"
ADMIN_PREFIX = "/_admin/"

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _utf8(text):
    # surrogateescape: the awkward_values knob's bytes that are not UTF-8 go out as they are
    # (see Dataset.doc_json).
    return text.encode("utf-8", "surrogateescape")


def _json_bytes(obj):
    return _utf8(_encode(obj))


# Admin answers escape every character that is not ASCII: the dump of an awkward_values
# dataset holds lone surrogates that no UTF-8 encoding carries.
_admin_json = json.JSONEncoder(separators=(",", ":")).encode


def _error(status, error, message):
    return status, _json_bytes({"error": error, "message": message})


def _not_found(message):
    return _error(404, "Not Found", message)


def _classify(parts):
    """API path segments (after /v1) -> (endpoint name for stats, route args) or None."""
    match parts:
        case ["contacts"]:
            return "contacts", (None,)
        case ["contacts", "custom_fields"]:
            return "custom_fields", ()
        case ["contacts", bookmark]:
            return "contacts", (bookmark,)
        case ["lists"]:
            return "lists", ()
        case ["list", list_id, "contacts"]:
            return "list_contacts", (list_id, None)
        case ["list", list_id, "contacts", bookmark]:
            return "list_contacts", (list_id, bookmark)
        case ["smart_segments"]:
            return "segments", ()
        case ["smart_segments", segment_id, "contacts"]:
            return "segment_contacts", (segment_id, None)
        case ["smart_segments", segment_id, "contacts", bookmark]:
            return "segment_contacts", (segment_id, bookmark)
    return None


def _split_api_path(path):
    """'/v1/list/x/contacts' -> ['list', 'x', 'contacts']; None if not under /v1/."""
    if not path.startswith(API_PREFIX + "/"):
        return None
    return [unquote(p) for p in path[len(API_PREFIX) + 1 :].split("/")]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server_version = "AutopilotSandbox/1.0"
    server: "SandboxHTTPServer"

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without NODELAY, Nagle plus the
        # client's delayed ACK would add ~40 ms to every response.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.request, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.request, False)

    def handle(self):
        # the client may go away (e.g. its timeout fired during a stall)
        with contextlib.suppress(ConnectionError, TimeoutError, OSError):
            super().handle()

    def log_message(self, fmt, *args):
        if self.server.sandbox.verbose:
            sys.stderr.write("sandbox: %s %s\n" % (self.address_string(), fmt % args))

    # ----- dispatch ----------------------------------------------------------

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path.startswith(ADMIN_PREFIX):
            self._admin("GET", path)
        else:
            self._api(path)

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        body = self._read_body()
        if path.startswith(ADMIN_PREFIX):
            self._admin("POST", path, body)
        else:
            self._api(path, method_ok=False)

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def parse_request(self):
        # The latency runs from here: the request line has just been read.
        self.arrived = _clock()
        return super().parse_request()

    def _send(self, status, body, headers=(), at=None):
        """The answer, at `at` (a time of _clock) if given, as one write: a real server's
        answer leaves at once, so status line, headers and body are ready before the wait
        and no work of this Python server's comes on top of the latency."""
        self.log_request(status)
        head = [
            "%s %d %s" % (self.protocol_version, status, self.responses[status][0]),
            "Server: " + self.version_string(),
            "Date: " + self.date_time_string(),
            "Content-Type: application/json; charset=utf-8",
            "Content-Length: %d" % len(body),
            *("%s: %s" % header for header in headers),
        ]
        answer = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        if at is not None:
            self._wait_until(at)
        self.wfile.write(answer)

    # ----- API ---------------------------------------------------------------

    def _api(self, path, method_ok=True):
        sb = self.server.sandbox
        parts = _split_api_path(path)
        route = _classify(parts) if parts is not None and method_ok else None
        endpoint = route[0] if route else "other"
        n, faults, limited = sb._arrive(path, endpoint)
        # The latency is the time from the request to the answer, the page's building included
        # (a server's answer time includes its work): the answer waits for what is left of it.
        answer_at = self.arrived + (faults["latency_ms"] or 0) / 1000.0

        if limited:
            headers = [("Retry-After", "1")] if faults["retry_after"] else []
            return self._finish_api(path, 429, _throttled_body(faults["rate_limit"], limited), headers, answer_at)
        if hit(n, faults["drop_every"]):
            sb._count("dropped")
            self._wait_until(answer_at)
            self.close_connection = True  # no response at all: the socket just closes
            return None
        if hit(n, faults["stall_every"]):
            sb._count("stalled")
            sb._sleep(faults["stall_seconds"])
            answer_at += faults["stall_seconds"]  # a stall comes on top of the latency
        if hit(n, faults["error_every"]):
            status, body = _error(500, "Internal Server Error", "sandbox fault")
            return self._finish_api(path, status, body, at=answer_at)

        status, body = self._answer(sb, route)
        if status == 200 and hit(n, faults["truncate_every"]):
            sb._count("truncated")
            body = body[: len(body) // 2]  # Content-Length matches: invalid JSON, not a short read
        elif status == 200 and hit(n, faults["missing_key_every"]):
            sb._count("missing_key")
            body = b'{"unexpected":true}'
        elif status == 200 and hit(n, faults["garble_every"]):
            sb._count("garbled")
            body = body.replace(b"[", b"[?", 1)  # invalid inside; a page's ending, its bookmark, as sent
        if hit(n, faults["trickle_every"]):
            sb._count("trickled")
            sb._record_status(path, status)
            self._wait_until(answer_at)
            return self._trickle(status, body, faults["trickle_interval"])
        return self._finish_api(path, status, body, at=answer_at)

    def _wait_until(self, moment):
        """Sleep until `moment` (time.monotonic), if it is still ahead."""
        left = moment - _clock()
        if left > 0:
            self.server.sandbox._sleep(left)

    def _trickle(self, status, body, interval):
        """Status and headers at once, then the body one byte per `interval`
        (cut short, connection closed, when the sandbox stops)."""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        sb = self.server.sandbox
        for index in range(len(body)):
            if sb._stopping.is_set():
                self.close_connection = True
                return
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            sb._sleep(interval)

    def _finish_api(self, path, status, body, headers=(), at=None):
        self.server.sandbox._record_status(path, status)
        self._send(status, body, headers, at)

    def _answer(self, sb, route):
        """Auth, then the endpoint's (status, body)."""
        key = self.headers.get("autopilotapikey")
        if key is None:
            return _error(400, "Bad Request", "No autopilotapikey header provided.")
        if key != sb.api_key:
            return _error(401, "Unauthorized", "Provided autopilotapikey not valid.")
        if route is None:
            return _not_found("No such endpoint: %s" % self.path.split("?", 1)[0])
        endpoint, args = route
        try:
            return 200, _ROUTES[endpoint](sb.dataset, *args)
        except KeyError as exc:
            return _not_found("Not found: %s" % exc.args[0])

    # ----- admin -------------------------------------------------------------

    def _admin(self, method, path, body=b""):
        sb = self.server.sandbox
        name = path[len(ADMIN_PREFIX) :]
        try:
            args = json.loads(body) if body else {}
            if not isinstance(args, dict):
                raise ValueError("expected a JSON object")
            action = _ADMIN.get((method, name))
            if action is None:
                status, out = _not_found("No such admin endpoint: %s %s" % (method, path))
            else:
                status, out = 200, _admin_json(action(sb, args)).encode("ascii")
        except KeyError as exc:
            status, out = _not_found("Not found: %s" % exc.args[0])
        except (ValueError, TypeError) as exc:
            status, out = _error(400, "Bad Request", str(exc))
        self._send(status, out)


def _throttled_body(rate, nth):
    """The two 429 bodies the API documents, taking turns (odd: the first)."""
    if nth % 2:
        rate_text = "%d" % rate if rate == int(rate) else "%g" % rate
        return _error(429, "Too Many Requests", "You have exceeded your request rate of %s r/s." % rate_text)[1]
    return _json_bytes(
        'Your request was throttled. Please see "Rate Limit" section of documentation at '
        "http://developers.autopilothq.com."
    )


def _page_body(page, dataset):
    """{"contacts": [...], "total_contacts": N[, "bookmark": ...]} as bytes."""
    docs = ",".join([dataset.doc_json(i) for i in page.indexes])
    tail = ',"bookmark":"%s"}' % page.bookmark if page.bookmark is not None else "}"
    return _utf8('{"contacts":[%s],"total_contacts":%d%s' % (docs, page.total, tail))


_ROUTES: dict[str, Callable[..., bytes]] = {
    "contacts": lambda ds, bm: _page_body(ds.contacts_page(bm), ds),
    "custom_fields": lambda ds: _json_bytes(ds.custom_field_definitions()),
    "lists": lambda ds: _json_bytes({"lists": ds.lists()}),
    "list_contacts": lambda ds, lid, bm: _page_body(ds.list_page(lid, bm), ds),
    "segments": lambda ds: _json_bytes({"segments": ds.segments()}),
    "segment_contacts": lambda ds, sid, bm: _page_body(ds.segment_page(sid, bm), ds),
}
ENDPOINTS = tuple(_ROUTES)  # the API endpoints, as the stats name them


def _admin_touch(sb, args):
    return {"contact_ids": sb.dataset.touch(contact_ids=args.get("contact_ids"), count=args.get("count"))}


def _admin_remove(kind):
    def action(sb, args):
        group_id = args[kind + "_id"]
        getattr(sb.dataset, "remove_from_" + kind)(group_id, args["contact_ids"])
        return {"ok": True}

    return action


def _admin_delete_list(sb, args):
    sb.dataset.delete_list(args["list_id"])
    return {"ok": True}


def _admin_delete_contacts(sb, args):
    sb.dataset.delete_contacts(args["contact_ids"])
    return {"ok": True}


def _admin_reset_stats(sb, args):
    sb.reset_stats()
    return {"ok": True}


_ADMIN = {
    ("GET", "stats"): lambda sb, args: sb.stats(),
    ("GET", "dump"): lambda sb, args: sb.dataset.dump(),
    ("GET", "faults"): lambda sb, args: sb.faults(),
    ("POST", "reset_stats"): _admin_reset_stats,
    ("POST", "faults"): lambda sb, args: sb.set_faults(**args),
    ("POST", "touch"): _admin_touch,
    ("POST", "set_custom_fields"): lambda sb, args: {"contact_ids": sb.dataset.set_custom_fields(args["contacts"])},
    ("POST", "add_contacts"): lambda sb, args: {"contact_ids": sb.dataset.add_contacts(int(args["count"]))},
    ("POST", "delete_list"): _admin_delete_list,
    ("POST", "delete_contacts"): _admin_delete_contacts,
    ("POST", "remove_from_list"): _admin_remove("list"),
    ("POST", "remove_from_segment"): _admin_remove("segment"),
}


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stalled or idle keep-alive handler never blocks exit
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address, sandbox):
        self.sandbox = sandbox
        self._conns = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn): skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.socket.getsockname()[:2]  # what server_bind set server_address to

    def track(self, conn, alive):
        with self._conns_lock:
            (self._conns.add if alive else self._conns.discard)(conn)

    def close_connections(self):
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address):
        if self.sandbox.verbose:
            super().handle_error(request, client_address)
