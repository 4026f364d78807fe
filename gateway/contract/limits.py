"""Every limit of the public contract, named once.

The request models (``requests.py``) enforce these numbers and the generated document
(``openapi.py``) states them, so the two cannot drift apart. Limits that belong to a business
rule are re-exported from the module that owns the rule (``auction.rules``), never copied.
"""

from __future__ import annotations

from applications.package import PACKAGES
from auction.feed import MAX_CATCH_UP
from auction.model import (
    CURRENCIES,
    LOAN_TYPES,
    MAX_INTEGER_DIGITS,
    RATE_SCALE,
    RoundState,
)
from auction.rules import (
    MAX_ANNUAL_RATE_E4,
    MAX_CONDITIONS_LEN,
    REPAYMENT_PERIODS,
)
from usecases.accounts import MAX_LOGIN_FAILURES
from usecases.operator import AUDIT_PAGE

#: tenor and grace limits per loan type: the guarantee package's (the newest one documented)
LOAN_TYPE_RULES = PACKAGES[-1].loan_types

# ----------------------------------------------------------------------------- wire numbers
MONEY_PLACES = 2  # "1500000.00"
RATE_PLACES = 4  # "31.2500" percent per year
SHARE_PLACES = 2  # related company share, percent
SHARE_MAX_PCT = 100
MONEY_MAX_INTEGER_DIGITS = MAX_INTEGER_DIGITS  # digits before the decimal point

# ----------------------------------------------------------------------------- text lengths
NAME_MAX = 200  # a person's full name, a bank's name, a company's trade name
SECTOR_MAX = 100
ID_MAX = 40  # company_id, exporter_user_id and the consent text version
OFFER_ID_MAX = 60
#: the characters of every id the server makes ("rnd_3f9c2a7d41b0e8c5a2d1"): an id with any
#: other can name nothing, and never reaches a database (PostgreSQL refuses NUL in text)
ID_CHARS = "A-Za-z0-9_-"
PATH_ID_MAX = 64  # an id in a path
PATH_ID_REGEX = f"[{ID_CHARS}]{{1,{PATH_ID_MAX}}}"
PURPOSE_MAX = 2000
EMAIL_MAX = 254
MOBILE_MAX = 30
PASSWORD_MIN = 10
PASSWORD_MAX = 200
TOTP_DIGITS = 6
#: parse-time ceiling on an offer's conditions; the round rule (``CONDITIONS_MAX``) is lower
CONDITIONS_PARSE_MAX = 10_000
CONDITIONS_MAX = MAX_CONDITIONS_LEN
IDEMPOTENCY_KEY_MAX = 200

# ----------------------------------------------------------------------------- codes
BANK_CODE_MIN = 2
BANK_CODE_MAX = 20
BANK_CODE_PATTERN = rf"[A-Z0-9_]{{{BANK_CODE_MIN},{BANK_CODE_MAX}}}"
NATIONAL_ID_DIGITS = 11  # TCKN
TAX_ID_DIGITS = 10  # VKN

# ----------------------------------------------------------------------------- lists
RELATED_MAX = 50
PREFERRED_MAX = 30

# ----------------------------------------------------------------------------- query strings
PAGE_MIN = 1
PAGE_MAX = 200
PAGE_DEFAULT = 50
BUSINESS_DAYS_MIN = 0
BUSINESS_DAYS_MAX = 366
BUSINESS_DAYS_DEFAULT = 7
YEAR_MIN = 2000  # the years of the holiday calendar the business-day rules are sure of
YEAR_MAX = 2100
#: the years a deadline may start in: its deadline (at most BUSINESS_DAYS_MAX business days, under
#: 18 months, later) must fall in the calendar's years too
START_YEAR_MIN = YEAR_MIN
START_YEAR_MAX = YEAR_MAX - 2
#: how a ``start`` begins: an RFC 3339 (ISO 8601 extended) date in those years
START_PATTERN = r"^20(?:[0-8][0-9]|9[0-8])-[0-9]{2}-[0-9]{2}T"
#: audit entry ids (an SQL INTEGER: 32 bits on PostgreSQL)
AUDIT_ID_MAX = 2**31 - 1
ACTOR_MAX = 80  # audit_log.actor
ACTOR_REGEX = f"[a-z]{{1,16}}(?::[{ID_CHARS}]{{1,{PATH_ID_MAX}}})?"  # admin, bank:<id>
ACTION_REGEX = "[a-z][a-z_]{0,39}"  # audit_log.action
ROUND_LIST_STATES = tuple(s.value for s in RoundState)  # open, closed, accepted, lapsed
#: the page cursor of GET /v1/bank/rounds: ``<closes_at ms>.<round_id>`` (opaque to clients)
CURSOR_PATTERN = rf"^[0-9]{{1,{MAX_INTEGER_DIGITS}}}\.[A-Za-z0-9_-]{{1,{ID_MAX}}}$"
#: as a query parameter: empty is the first page
CURSOR_PATTERN_OR_EMPTY = "^(?:" + CURSOR_PATTERN[1:-1] + ")?$"

# ----------------------------------------------------------------------------- live stream
STREAM_SUBPROTOCOLS = ("ige.v1.json", "ige.v1.msgpack")  # JSON text, MessagePack binary frames
STREAM_MAX_CATCH_UP = MAX_CATCH_UP  # a since_seq further behind than this gets a snapshot
STREAM_SLOW_CLIENT_CLOSE = 4008  # WebSocket close code for a slow consumer
STREAM_MAX_FRAME = 64 * 1024  # bytes of a client's message; a larger one closes with 1009
#: WebSocket close code for a client that sends commands faster than IGE_WS_COMMAND_RATE
STREAM_FLOOD_CLOSE = 4029
#: WebSocket close code for a page's connection whose browser session ended (logout,
#: deactivation, its absolute limit): the page signs in again
STREAM_SESSION_ENDED = 4401
#: a missing or used ticket, no supported subprotocol, a foreign Origin: the handshake is
#: refused before the WebSocket opens, so the client sees this HTTP status (uvicorn answers a
#: close before accept with it), never a close code
STREAM_HANDSHAKE_STATUS = 403
STREAM_HANDSHAKE_REFUSED = 1008  # the code the route closes with; no client ever sees it

# ----------------------------------------------------------------------------- round rules
#: documented ranges; the per-loan-type rules themselves live in auction.rules
TENOR_MIN = min(r.min_tenor_months for r in LOAN_TYPE_RULES.values())
TENOR_MAX = max(r.max_tenor_months for r in LOAN_TYPE_RULES.values())
GRACE_MAX = max(r.max_grace_months for r in LOAN_TYPE_RULES.values())
ANNUAL_RATE_MAX_PCT = MAX_ANNUAL_RATE_E4 // RATE_SCALE

__all__ = [
    "ACTION_REGEX",
    "ACTOR_MAX",
    "ACTOR_REGEX",
    "ANNUAL_RATE_MAX_PCT",
    "AUDIT_ID_MAX",
    "AUDIT_PAGE",
    "BANK_CODE_MAX",
    "BANK_CODE_MIN",
    "BANK_CODE_PATTERN",
    "BUSINESS_DAYS_DEFAULT",
    "BUSINESS_DAYS_MAX",
    "BUSINESS_DAYS_MIN",
    "CONDITIONS_MAX",
    "CONDITIONS_PARSE_MAX",
    "CURRENCIES",
    "CURSOR_PATTERN",
    "CURSOR_PATTERN_OR_EMPTY",
    "EMAIL_MAX",
    "GRACE_MAX",
    "IDEMPOTENCY_KEY_MAX",
    "ID_CHARS",
    "ID_MAX",
    "LOAN_TYPES",
    "LOAN_TYPE_RULES",
    "MAX_LOGIN_FAILURES",
    "MOBILE_MAX",
    "MONEY_MAX_INTEGER_DIGITS",
    "MONEY_PLACES",
    "NAME_MAX",
    "NATIONAL_ID_DIGITS",
    "OFFER_ID_MAX",
    "PAGE_DEFAULT",
    "PAGE_MAX",
    "PAGE_MIN",
    "PASSWORD_MAX",
    "PASSWORD_MIN",
    "PATH_ID_MAX",
    "PATH_ID_REGEX",
    "PREFERRED_MAX",
    "PURPOSE_MAX",
    "RATE_PLACES",
    "RELATED_MAX",
    "REPAYMENT_PERIODS",
    "ROUND_LIST_STATES",
    "SECTOR_MAX",
    "SHARE_MAX_PCT",
    "SHARE_PLACES",
    "START_PATTERN",
    "START_YEAR_MAX",
    "START_YEAR_MIN",
    "STREAM_FLOOD_CLOSE",
    "STREAM_HANDSHAKE_REFUSED",
    "STREAM_HANDSHAKE_STATUS",
    "STREAM_MAX_CATCH_UP",
    "STREAM_MAX_FRAME",
    "STREAM_SESSION_ENDED",
    "STREAM_SLOW_CLIENT_CLOSE",
    "STREAM_SUBPROTOCOLS",
    "TAX_ID_DIGITS",
    "TENOR_MAX",
    "TENOR_MIN",
    "TOTP_DIGITS",
    "YEAR_MAX",
    "YEAR_MIN",
]
