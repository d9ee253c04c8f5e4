"""The dashboard's web server: ``http.server`` in a thread of the coordinator's process.

``python -m vistrit coordinator --dashboard 127.0.0.1:8787`` starts a :class:`Dashboard`
beside the coordinator and prints its URL with the token, as Jupyter does::

    vistrit dashboard at http://127.0.0.1:8787/?token=5f0c...

**Nothing is served without the token**, not even the page's script. The token is
derived from the cluster's client secret (``HMAC-SHA256(secret, "vistrit dashboard")``,
its first 32 hex digits: :func:`dashboard_token`), so whoever may submit tasks may look,
every coordinator of a cluster has the same one, and it stays the same across restarts;
the secret itself never appears in a URL. A browser that opens the URL is given the
token as a cookie (``HttpOnly``, ``SameSite=Strict``) and sent on to ``/``, so the token
leaves the address bar and is not sent on as a referrer; a script sends it as
``Authorization: Bearer TOKEN``. Tokens are compared in constant time.

The server answers ``GET`` only: the pages (``/``, ``/static/...``, shipped in the
package: no download at run time) and the JSON API (``/api/...``, see
:mod:`vistrit.dashboard.views`). Every byte from a browser is treated as hostile: query
values are checked (a clear 400 otherwise), at most :data:`MAX_CLIENTS` connections are
served at once (more are closed at once), a connection that sends nothing for
:data:`IDLE_TIMEOUT` seconds is closed, and every answer carries a content security
policy that allows nothing from elsewhere.

Read next: :mod:`vistrit.dashboard.frames`.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vistrit.coordinator import Coordinator
from vistrit.credentials import Credentials
from vistrit.dashboard import views
from vistrit.dashboard.frames import FrameSampler
from vistrit.logic.tasks import STATES
from vistrit.timers import RepeatingTimer

log = logging.getLogger(__name__)

#: The cookie that carries the token, once a browser has opened the URL.
COOKIE = "vistrit_dashboard"

#: The most connections served at once.
MAX_CLIENTS = 32

#: A connection that sends nothing for this many seconds is closed.
IDLE_TIMEOUT = 10.0

#: The files under ``/static/``, and their types: nothing else is served from the package.
STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "index.html": "text/html; charset=utf-8",
}

#: Sent with every answer.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def dashboard_token(credentials: Credentials) -> str:
    """The dashboard's token: derived from the client secret (else the coordinator's), so
    it is the same on every coordinator of a cluster and across restarts."""
    secret = credentials.secrets.get("client") or credentials.secrets.get("coordinator")
    if secret is None:  # a coordinator always holds one; a token of its own, just in case
        return secrets.token_hex(16)
    return hmac.new(secret, b"vistrit dashboard", hashlib.sha256).hexdigest()[:32]


class BadRequest(ValueError):
    """A request the API cannot answer as asked (400, with the reason)."""


class Dashboard:
    """The web server of one coordinator. ``start()``, ``url``, ``stop()``."""

    def __init__(
        self, coordinator: Coordinator, bind: tuple[str, int], token: str | None = None
    ) -> None:
        if coordinator.credentials is None:
            raise RuntimeError("start the coordinator first: the token comes from its secret")
        self.coordinator = coordinator
        self.token = token or dashboard_token(coordinator.credentials)
        self.frames = FrameSampler(self._peer, time.time)
        self.throughput: views.Throughput | None = None
        self._bind = bind
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sampler = RepeatingTimer(1.0, self._sample, name="dashboard throughput")

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the real port, if bound to port 0)."""
        if self._server is None:
            raise RuntimeError("the dashboard is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """The URL to open, with the token."""
        host, port = self.address
        shown = "127.0.0.1" if host == "0.0.0.0" else f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/?token={self.token}"

    def start(self) -> None:
        """Listen, and serve in a thread of its own. ``OSError`` if the address is taken."""
        self.throughput = views.Throughput(self.coordinator, time.time())
        family = socket.AF_INET6 if ":" in self._bind[0] else socket.AF_INET
        self._server = _Server(self._bind, _Handler, self, family)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.2,), name="dashboard", daemon=True
        )
        self._thread.start()
        self.coordinator.frame_tap = self.frames.tap
        self._sampler.start()
        log.info("dashboard at http://%s:%d/ (the URL with its token is printed)", *self.address)

    def stop(self) -> None:
        """Stop serving, and stop sampling. Idempotent."""
        self._sampler.stop()
        if self.coordinator.frame_tap == self.frames.tap:
            self.coordinator.frame_tap = None
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()

    def _sample(self) -> None:
        if self.throughput is not None:
            self.throughput.sample(time.time())

    def _peer(self, peer_id: Any) -> tuple[str, int] | None:
        """A peer's name and agreed version (for the frame sampler; under the lock)."""
        core = self.coordinator.core
        peer = core.peers.get(peer_id) if core is not None else None
        if peer is None:
            return None
        return f"{peer.kind.name.lower()} {peer.name or str(peer.id)[:8]}", peer.version

    # -- what the API answers ---------------------------------------------------------------

    def answer(self, path: str, query: dict[str, str]) -> Any:
        """The JSON view for an API *path*. ``LookupError``: 404; ``BadRequest``: 400."""
        coordinator = self.coordinator
        parts = path.strip("/").split("/")[1:]  # after "api"
        if parts == ["cluster"]:
            return views.cluster(coordinator, self.throughput)
        if parts == ["tasks"]:
            state = query.get("state") or None
            if state is not None and state not in STATES:
                raise BadRequest(f"state must be one of {', '.join(STATES)}")
            return views.tasks(
                coordinator,
                _number(query, "limit", 50, 1, views.MAX_LIMIT),
                _number(query, "offset", 0, 0, 10**7),
                state,
            )
        if len(parts) == 2 and parts[0] == "tasks":
            try:
                return views.task(coordinator, parts[1])
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        if parts == ["stream"]:
            return views.stream(coordinator, _number(query, "limit", 300, 1, views.MAX_LIMIT))
        if parts == ["elections"]:
            return views.elections(coordinator)
        if parts == ["frames"]:
            return {"frames": self.frames.frames(_number(query, "after", 0, 0, 2**62))}
        if len(parts) == 2 and parts[0] == "frames":
            if not parts[1].isdigit() or len(parts[1]) > 18:
                raise BadRequest("a frame is named by its number")
            frame = self.frames.frame(int(parts[1]))
            if frame is None:
                raise LookupError(f"frame {parts[1]} is not kept (any more)")
            return frame
        raise LookupError(f"no such API: {path}")


def _number(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None or text == "":
        return default
    if not re.fullmatch(r"\d{1,19}", text) or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(text)


class _Server(http.server.ThreadingHTTPServer):
    """A thread per connection, at most MAX_CLIENTS at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 2 * MAX_CLIENTS  # a page's burst of requests waits, not retries

    def __init__(
        self,
        bind: tuple[str, int],
        handler: Callable[..., http.server.BaseHTTPRequestHandler],
        dashboard: Dashboard,
        family: socket.AddressFamily,
    ) -> None:
        self.address_family = family
        self.dashboard = dashboard
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(bind, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread, or close it at once if too many are served."""
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (a reset, a browser gone): logged, never printed."""
        log.debug("dashboard: connection from %s failed", client_address, exc_info=True)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve, then free the slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = IDLE_TIMEOUT
    protocol_version = "HTTP/1.1"
    server_version = "vistrit-dashboard"
    sys_version = ""

    def version_string(self) -> str:
        """The Server header: the name alone, no Python version."""
        return self.server_version

    def do_GET(self) -> None:
        """Check the token, then serve a page, a static file or an API answer."""
        url = urlsplit(self.path)
        try:
            pairs = parse_qs(url.query, max_num_fields=20, strict_parsing=False)
        except ValueError:
            self._send_json(400, {"error": "too many query fields"})
            return
        query = {key: values[-1] for key, values in pairs.items()}
        dashboard = self.server.dashboard
        given = query.pop("token", None)
        if given is not None and self._is_token(given) and not url.path.startswith("/api/"):
            self.send_response(303)  # keep it in a cookie, out of the address bar
            self.send_header("Location", url.path if url.path.startswith("/") else "/")
            cookie = f"{COOKIE}={dashboard.token}; HttpOnly; SameSite=Strict; Path=/"
            self.send_header("Set-Cookie", cookie)
            self._finish_headers(0)
            return
        if not (self._is_token(given) or self._is_token(self._presented())):
            self._refuse(url.path)
            return
        if url.path.startswith("/api/"):
            self._api(url.path, query)
        elif url.path in ("/", "/index.html"):
            self._static("index.html")
        elif url.path.startswith("/static/") and url.path[8:] in STATIC:
            self._static(url.path[8:])
        else:
            self._send_json(404, {"error": f"no such page: {url.path[:100]}"})

    def do_HEAD(self) -> None:
        """Refused: the dashboard answers GET only."""
        self._send_json(405, {"error": "the dashboard answers GET only"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD

    def _presented(self) -> str | None:
        """The token the request carries: a bearer header, or the cookie."""
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header[7:].strip()
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                return value
        return None

    def _is_token(self, given: str | None) -> bool:
        token = self.server.dashboard.token
        return given is not None and hmac.compare_digest(given.encode(), token.encode())

    def _refuse(self, path: str) -> None:
        why = (
            "this dashboard needs its token: open the URL the coordinator printed "
            "(http://HOST:PORT/?token=...)"
        )
        if path.startswith("/api/"):
            self._send_json(401, {"error": why})
            return
        page = f"<!doctype html><title>Vistrit: token needed</title><p>{why}</p>\n"
        self._send(401, page.encode(), "text/html; charset=utf-8")

    def _api(self, path: str, query: dict[str, str]) -> None:
        try:
            view = self.server.dashboard.answer(path, query)
        except BadRequest as exc:
            self._send_json(400, {"error": str(exc)})
        except LookupError as exc:
            self._send_json(404, {"error": str(exc.args[0] if exc.args else exc)})
        else:
            self._send_json(200, view)

    def _static(self, name: str) -> None:
        data = (resources.files("vistrit.dashboard") / "static" / name).read_bytes()
        self._send(200, data, STATIC[name])

    def _send_json(self, status: int, view: Any) -> None:
        self._send(status, json.dumps(view, separators=(",", ":")).encode(), "application/json")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self._finish_headers(len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _finish_headers(self, length: int) -> None:
        self.send_header("Content-Length", str(length))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """To the log at debug level, without the query (it may hold the token)."""
        text = re.sub(r"token=[^&\s\"']*", "token=...", format % args)
        log.debug("dashboard: %s: %s", self.address_string(), text)
