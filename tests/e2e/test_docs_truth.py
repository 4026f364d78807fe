"""What ``/docs`` says of the live stream is what a server with the default settings does: the
numbers are read from the document and tried on a real server (its send queue and ticket
lifetime at their defaults).

``/docs`` once said a refused WebSocket closes with 1008 (the server answers the upgrade with
403), that a snapshot replaces the replay beyond 1000 missed events (it did beyond the room of
the send queue, 511 by default; since 2026-12-01 beyond 256, MAX_CATCH_UP), and its stream
section opened with the ticket operation's sentence."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as sync_connect

from auction.feed import MAX_CATCH_UP
from gateway.settings import Settings
from tests.e2e.test_stream import JSON, next_event, quiet, subscribe
from tests.support import OFFER_BODY, Api

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(module_server_factory: Any) -> Any:
    # the defaults (queue 512, tickets 30 s), but no heartbeat for a minute: a heartbeat
    # waiting in the queue would take one place of the replay at the boundary
    srv = module_server_factory(IGE_HEARTBEAT_SECONDS="60")
    api = Api(srv.base_url)
    bank = api.bank_token(api.create_bank("DOCS", "Docs Bankası"))
    yield srv, api, bank, api.http.get("/v1/openapi.json").json()
    api.http.close()


def x_websocket(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["paths"]["/v1/stream/tickets"]["post"]["x-websocket"])


def stream_section(api: Api) -> str:
    page = api.http.get("/docs").text
    section = page[page.index('<section id="stream">'):]
    return re.sub(r"<[^>]+>", "", section[:section.index("</section>")])


def test_the_stream_section_opens_with_the_stream(world: Any) -> None:
    _, api, _, _ = world
    text = stream_section(api)
    assert text.startswith("Live stream\nLive stream (WebSocket)")
    assert "Returns a single-use ticket" not in text  # the ticket operation's own sentence


def test_a_refused_handshake_is_the_status_the_document_states(world: Any) -> None:
    srv, api, bank, doc = world
    status = x_websocket(doc)["handshake_refused"]["status"]
    assert f"refused at\nthe handshake with HTTP {status}" in stream_section(api)
    assert "1008" not in api.http.get("/docs").text
    for url, protocols in ((f"{srv.ws_url}?ticket={api.ticket(bank)}", ["ige.v9"]),
                           (f"{srv.ws_url}?ticket=used-or-unknown", [JSON]),
                           (srv.ws_url, [JSON])):
        with pytest.raises(InvalidStatus) as refused, \
                sync_connect(url, subprotocols=protocols, open_timeout=10):
            pass
        assert refused.value.response.status_code == status


def test_the_numbers_of_the_document_are_the_servers_defaults(world: Any) -> None:
    _, api, _, doc = world
    ws, defaults = x_websocket(doc), Settings()
    assert ws["queue_frames"] == defaults.queue_size == 512
    # the server's reach (MAX_CATCH_UP) or the default queue's room, whichever is less
    assert ws["catch_up_events"] == min(MAX_CATCH_UP, defaults.queue_size - 1) == 256
    assert ws["ticket_ttl_seconds"] == defaults.ticket_ttl_s
    assert api.http.post("/v1/stream/tickets", headers=world[2]).json()["expires_in"] == \
        ws["ticket_ttl_seconds"]
    text = stream_section(api)
    assert f"default queue of {ws['queue_frames']} frames at most\n{ws['catch_up_events']} " \
           "events behind" in text


async def test_a_replay_goes_up_to_the_stated_number_of_events_and_no_further(
        world: Any) -> None:
    srv, api, bank, doc = world
    limit = x_websocket(doc)["catch_up_events"]
    rid = api.open_round()["round_id"]
    first = api.offer(bank, rid)
    assert first.status_code == 201
    oid = first.json()["offer_id"]

    def revise(i: int) -> None:
        r = api.http.put(f"/v1/bank/rounds/{rid}/offers/{oid}",
                         json={**OFFER_BODY, "annual_rate": f"{30 + i % 90 / 10:.2f}"},
                         headers=bank)
        assert r.status_code == 200, r.text

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(revise, range(limit + 1)))
    seq = api.http.get(f"/v1/bank/rounds/{rid}/book", headers=bank).json()["seq"]
    assert seq == limit + 2

    def connect() -> Any:
        return websockets.connect(f"{srv.ws_url}?ticket={api.ticket(bank)}",
                                  subprotocols=[JSON], max_size=None)

    async with connect() as ws:  # exactly `limit` events behind: each one replayed
        await subscribe(ws, f"round:{rid}", since_seq=seq - limit)
        got = [await next_event(ws) for _ in range(limit)]
        assert [(m["type"], m["seq"]) for m in got] == [
            ("quote", s) for s in range(seq - limit + 1, seq + 1)]
        assert await quiet(ws, 0.3) == []
    async with connect() as ws:  # one more: the snapshot instead
        await subscribe(ws, f"round:{rid}", since_seq=seq - limit - 1)
        snap = await next_event(ws)
        assert (snap["type"], snap["seq"]) == ("snapshot", seq)
        assert len(snap["offers"]) == 1 and await quiet(ws, 0.3) == []
