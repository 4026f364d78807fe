"""The Prometheus metrics of a gateway process, defined in one place, and ``/metrics``.

Multiprocess mode: ``ige serve`` and ``ige demo`` set ``PROMETHEUS_MULTIPROC_DIR`` (a private
directory, unless the environment already names one) before uvicorn starts, so every worker
process writes its numbers to files there and ``/metrics``, whichever process answers it, reports
their sum (counters, histograms, ``ige_websockets_open``, ``ige_persister_lag_events``) or their
maximum (``ige_persister_lag_seconds``); a process that stops, or is found dead by the next one
to start, is dropped from the live gauges. Without the variable (an app built in-process, as in
tests) the metrics live in this process's registry.

The variable must be set before ``prometheus_client`` is first imported (it picks its storage
then): ``gateway.cli`` imports neither this module nor the app before it is set.

Use cases never import this module: the gateway measures around them, or reads what they return.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

__all__ = ["CONTENT_TYPE_LATEST", "exposition", "multiprocess_mode"]

#: this process's id, kept (a fork's child learns its own): in multiprocess mode every metric
#: update asks for it, and ``os.getpid`` is a system call each time (2 % of a gateway's CPU
#: under a connection flood)
_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))
if getattr(values.ValueClass, "_multiprocess", False):
    # before any metric is made (this module defines them all): each class keeps its own files
    values.ValueClass = values.MultiProcessValue(  # type: ignore[no-untyped-call]
        process_identifier=lambda: _pid[0])

#: request arrival to response ready: fine-grained between 0.5 and 50 ms
ACK_BUCKETS = (0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
               0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
PUSH_BUCKETS = ACK_BUCKETS + (5.0,)
CLOSE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0,
                 60.0, 120.0, 300.0)

OFFERS = Counter(
    "ige_offers", "Offers (op=submit: POST, op=revise: PUT) by outcome: accepted, replayed "
    "(an Idempotency-Key answered again) or the refusal's problem code.", ["op", "outcome"])
OFFER_ACK = Histogram(
    "ige_offer_ack_seconds", "Offer requests: from the request's arrival in the app to its "
    "response being ready to send, whatever the outcome.", ["op"], buckets=ACK_BUCKETS)
PUSH = Histogram(
    "ige_push_seconds", "Live quote frames: from the offer's acceptance (the book's clock) to "
    "the frame written to the WebSocket (this host's clock).", buckets=PUSH_BUCKETS)
WEBSOCKETS_OPEN = Gauge(
    "ige_websockets_open", "Live-stream WebSocket connections open.",
    multiprocess_mode="livesum")
RATE_LIMITED = Counter(
    "ige_rate_limited", "Calls refused with 429 rate_limited, by rule "
    "(<route>:addr | <route>:acct | <route>:fail).", ["rule"])
REFUSED_CONNECTIONS = Counter(
    "ige_refused_connections", "Connections and WebSockets refused or closed by a bound, by "
    "reason (per_address, max_connections, evicted, header_timeout, write_stall, per_principal, "
    "queue, queue_bytes, send_timeout, commands).", ["reason"])
SNAPSHOTS_DELAYED = Counter(
    "ige_stream_reads_delayed", "Snapshots and catch-ups that waited because their principal "
    "had used up its bytes per second (IGE_WS_SNAPSHOT_BYTES_PER_S).")
SNAPSHOTS = Counter(
    "ige_stream_snapshots", "Snapshots sent, by cache: hit (the offers' bytes were kept for "
    "that round, book content, viewer and encoding) or miss (read and built).", ["cache"])
SLOW_CLIENTS = Counter(
    "ige_slow_clients_dropped", "Stream connections dropped because their send queue was full.")
PERSISTER_LAG_EVENTS = Gauge(
    "ige_persister_lag_events", "Book events not yet in SQL, over the rounds of the buckets the "
    "worker holds, at its last catch-up pass.", multiprocess_mode="livesum")
PERSISTER_LAG_SECONDS = Gauge(
    "ige_persister_lag_seconds", "Age of the oldest book event not yet in SQL at the last "
    "catch-up pass (0: none).", multiprocess_mode="livemax")
PERSIST_CLASHES = Counter(
    "ige_persist_clashes", "Rounds whose book disagrees with SQL at a seq SQL holds (a "
    "failover lost events already in SQL: usecases/durability.py Clash); each needs an "
    "operator.")
#: how late the event loop's timers fire: every request, frame and background task waits that
#: long behind other work (a flood's accepts, a big snapshot, a full garbage collection)
LOOP_LAG = Histogram(
    "ige_event_loop_lag_seconds", "How late a timer of the process's event loop fired, sampled "
    "every 0.1 s: what every request, frame and background task waited behind other work.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
LOOP_LAG_EVERY_S = 0.1
GC_PAUSE = Histogram(
    "ige_gc_pause_seconds", "Python garbage collections of the process, by generation (2: a "
    "full one): the interpreter does nothing else meanwhile (gateway/stalls.py).",
    ["generation"], buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                             0.1, 0.25, 0.5, 1.0))
CLOSE_LAG = Histogram(
    "ige_close_lag_seconds", "Rounds closed: from the round's deadline to its closing record "
    "written.", buckets=CLOSE_BUCKETS)
BACKEND_ERRORS = Counter(
    "ige_backend_errors", "Failures of a backing service (redis, sql; other: a bare OSError): "
    "requests answered 503, and errors of the background loops.", ["service"])
PUBSUB_RECONNECTS = Counter(
    "ige_pubsub_reconnects", "Times the stream's pub/sub listener lost Redis and reconnected.")
HTTP_REQUESTS = Counter(
    "ige_http_requests", "HTTP requests by route template (unmatched: no route), method and "
    "status.", ["route", "method", "status"])

for _service in ("redis", "sql"):
    BACKEND_ERRORS.labels(_service)
for _op in ("submit", "revise"):
    OFFERS.labels(_op, "accepted")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_http: dict[tuple[str, str, int], Counter] = {}
_offers: dict[tuple[str, str], Counter] = {}
_acks: dict[str, Histogram] = {}


def request_done(route: str, method: str, status: int) -> None:
    """One HTTP request answered (labels bounded: route templates, known methods, statuses)."""
    key = (route, method if method in _METHODS else "other", status)
    child = _http.get(key)
    if child is None:
        child = _http[key] = HTTP_REQUESTS.labels(key[0], key[1], str(status))
    child.inc()


def offer_done(op: str, outcome: str, seconds: float) -> None:
    key = (op, outcome)
    child = _offers.get(key)
    if child is None:
        child = _offers[key] = OFFERS.labels(op, outcome)
    child.inc()
    ack = _acks.get(op)
    if ack is None:
        ack = _acks[op] = OFFER_ACK.labels(op)
    ack.observe(seconds)


# ----------------------------------------------------------------------------- processes
def multiprocess_mode() -> bool:
    """Whether this process writes its numbers to PROMETHEUS_MULTIPROC_DIR."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def _directory() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def process_started() -> None:
    """A server process starts: drop the live gauges of processes that died without saying so
    (killed), as prometheus_client's ``mark_process_dead`` would on their exit."""
    if not multiprocess_mode():
        return
    path = _directory()
    for f in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid = os.path.basename(f).removesuffix(".db").rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), path)  # type: ignore[no-untyped-call]


async def watch_loop_lag() -> None:
    """Until cancelled: sleep ``LOOP_LAG_EVERY_S`` and record how late the wake-up came."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(LOOP_LAG_EVERY_S)
        LOOP_LAG.observe(max(0.0, loop.time() - t - LOOP_LAG_EVERY_S))


def process_stopping() -> None:
    """This server process stops: its live gauges no longer count."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid(), _directory())  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exposition() -> bytes:
    """The text format: every process's numbers in multiprocess mode, else this one's."""
    if multiprocess_mode():
        registry = CollectorRegistry()
        with contextlib.suppress(ValueError):  # the directory went away: report nothing
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
