"""What keeps slow, idle or too many connections from taking the server down.

uvicorn's HTTP/1.1 protocol (h11) waits for a request's headers as long as the client likes, accepts
connections until the process runs out of file descriptors, and logs each failed `accept()` (asyncio repeats it
for every pending connection, thousands of times a second). Here:

- a connection has `header_timeout` seconds, from connecting or from its previous response, to send a request's
  headers; then it is answered 408 (if it sent anything) and closed. Idle keep-alive connections are closed
  after `keep_alive_timeout`; a body must arrive within `body_timeout` (`middleware.BodyLimit`);
- at most `max_connections` are open: a new one past the cap closes the connection that has waited longest
  without a request in progress (idle, or headers still trickling in), so slow clients cannot crowd out good
  ones; when every open connection has a request in progress, the new one gets 503 and is closed;
- the descriptor limit is checked at start against `max_connections` (and raised to the hard limit if needed);
- repeated log records (the same message from asyncio or uvicorn) are written once per interval, with a count.

Errors written here, before a request exists, have the service's one JSON shape and an X-Request-ID."""

from __future__ import annotations

import json
import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

from rerankforge.core.errors import ConfigError

from .middleware import error_body

logger = logging.getLogger(__name__)

RESERVED_DESCRIPTORS = 128
"""File descriptors kept for what is not a client connection: the listening socket, model and index files,
logs, torch's and the event loop's own."""

ACCEPT_BURST = RESERVED_DESCRIPTORS // 4
"""The listen backlog, which is also how many connections asyncio accepts per turn of the event loop (uvicorn's
default is 2048). A connection past `max_connections` releases the descriptor of the one it evicts a turn or two
after it was accepted, so a flood holds up to `max_connections` + 2 bursts at once: with 2048 it ran a process out
of descriptors under a slowloris attack (tests/test_serve_connections.py), with a quarter of the reserve it
cannot. Clients past the backlog wait in the kernel and retry their SYN."""

DEFAULT_MAX_CONNECTIONS = 1000


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    header_timeout: float = 10.0
    keep_alive_timeout: float = 5.0


def raw_error(status: int, reason: str, kind: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection, its body `error_body`'s with a request id."""
    request_id = uuid.uuid4().hex
    body = json.dumps(error_body(status, kind, message, request_id=request_id)).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\nx-request-id: {request_id}\r\n\r\n")
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a connection cap that evicts the longest-waiting idle
    connection. `limits` is set on the subclass `protocol_for` makes."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = None
        self._arm_header_deadline()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if not self.waiting():  # a request's headers arrived: its body and answer have their own limits
            self._cancel_header_deadline()

    def on_response_complete(self) -> None:
        self._arm_header_deadline()  # before super(): a pipelined request it starts cancels it again
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """Malformed HTTP: the service's JSON error instead of uvicorn's plain text."""
        self._close_with(raw_error(400, "Bad Request", "bad_request",
                                   "malformed HTTP/1.1 request: it could not be parsed"))

    def waiting(self) -> bool:
        """No request in progress: headers still coming, or idle between requests."""
        return self.cycle is None or self.cycle.response_complete

    # the header deadline

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        if not self.transport.is_closing():
            self._waiting_since = time.monotonic()
            self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self.waiting():
            return
        started = bool(self.conn.trailing_data[0])  # part of a request arrived: say why it is cut off
        self._close_with(raw_error(408, "Request Timeout", "request_timeout",
                                   f"request headers not received within header_timeout="
                                   f"{self.limits.header_timeout:g} s") if started else b"")

    # the connection cap

    def _make_room(self) -> None:
        idle = [c for c in self.connections
                if c is not self and isinstance(c, GuardedH11Protocol) and c.waiting()
                and not c.transport.is_closing()]
        if idle:
            oldest = min(idle, key=lambda c: c._waiting_since)
            logger.warning("max_connections=%d reached: closed the connection that waited longest without a "
                           "request", self.limits.max_connections)
            oldest._close_with(b"")
        else:
            logger.warning("max_connections=%d reached with a request in progress on each: refused a new "
                           "connection with 503", self.limits.max_connections)
            self._close_with(raw_error(503, "Service Unavailable", "overloaded",
                                       f"the server has max_connections={self.limits.max_connections} connections "
                                       f"open, each with a request in progress; retry shortly"))

    def _close_with(self, response: bytes) -> None:
        self._cancel_header_deadline()
        if not self.transport.is_closing():
            if response:
                self.transport.write(response)
            self.transport.close()


def protocol_for(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def uvicorn_config(app, host: str, port: int, limits: ConnectionLimits):
    """The uvicorn configuration the service runs under: the guarded h11 protocol, its timeouts, quiet logs."""
    import uvicorn

    install_repeat_filter()
    return uvicorn.Config(app, host=host, port=port, log_level="warning", http=protocol_for(limits),
                          timeout_keep_alive=limits.keep_alive_timeout, backlog=ACCEPT_BURST)


def fit_descriptor_limit(max_connections: int | None) -> int:
    """The number of connections to serve: `max_connections`, or for None the default or what the descriptor
    limit allows. Raises the soft limit of open files towards the hard one when more are needed; a
    `max_connections` that even the hard limit cannot hold is a ConfigError (the server would fail in accept())."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to check
        return max_connections or DEFAULT_MAX_CONNECTIONS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = (max_connections or DEFAULT_MAX_CONNECTIONS) + RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    allowed = wanted if soft == resource.RLIM_INFINITY else soft
    if allowed >= wanted:
        return wanted - RESERVED_DESCRIPTORS
    fits = allowed - RESERVED_DESCRIPTORS
    if max_connections is None and fits >= 1:
        logger.warning("this process may open %d files (ulimit -n): serving at most %d connections", allowed, fits)
        return fits
    raise ConfigError(f"max_connections: {wanted - RESERVED_DESCRIPTORS} connections need about {wanted} open "
                      f"files ({RESERVED_DESCRIPTORS} more for the model, index and logs), but this process may "
                      f"open only {allowed} (ulimit -n; hard limit {hard}): set max_connections to at most "
                      f"{max(fits, 0)} or raise the limit")


class RepeatFilter(logging.Filter):
    """Lets the first record of each message through, then one per `interval` seconds, which says how many like
    it were held back; so a fault that repeats thousands of times a second costs a line a minute."""

    MAX_KINDS = 1000

    def __init__(self, interval: float = 60.0, clock=time.monotonic):
        super().__init__()
        self.interval, self.clock = interval, clock
        self.kinds: dict[tuple, list] = {}  # kind -> [when it was last let through, how many held back since]

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg).split("\n", 1)[0],
                record.exc_info[0] if record.exc_info else None)
        now, seen = self.clock(), self.kinds.get(kind)
        if seen is not None and now - seen[0] < self.interval:
            seen[1] += 1
            return False
        if len(self.kinds) >= self.MAX_KINDS:
            self.kinds.clear()
        held = seen[1] if seen else 0
        self.kinds[kind] = [now, 0]
        if held:
            record.msg = f"{record.msg} [and {held} more like it in the last {self.interval:g} s]"
        return True


REPEATING_LOGGERS = ("asyncio", "uvicorn.error", __name__)
"""Loggers a client can make repeat themselves: failed accept()s, malformed requests, the connection cap."""


def install_repeat_filter(interval: float = 60.0) -> None:
    for name in REPEATING_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in target.filters):
            target.addFilter(RepeatFilter(interval))


@contextmanager
def serving_in_thread(app, limits: ConnectionLimits | None = None):
    """Serve `app` as `rerankforge serve` does (uvicorn, the guarded h11 protocol) on a free 127.0.0.1 port, in a
    thread; yields the base URL (tests, benchmarks, notebooks)."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, limits or ConnectionLimits()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
