"""Every response body and stream message, as ``TypedDict`` declarations.

They cost nothing at run time; mypy checks the view functions that build these dicts once
those are annotated with them, and ``openapi.py`` generates the document's schemas from them
(``Doc`` markers carry descriptions and wire formats such as ``Money`` or ``Timestamp``).
The component names of the document (``ROUND``, ``BOOK_ENTRY`` ...) are kept in the table
``components.COMPONENTS``, so that clients generated from the document keep their type names.
"""

# No ``from __future__ import annotations`` here: Python 3.11 tells ``NotRequired`` keys of a
# TypedDict apart only from evaluated annotations.
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from gateway.contract import limits as L
from gateway.contract.requests import (
    AMOUNT_TEXT,
    COMMITMENT_TEXT,
    CONDITIONS_TEXT,
    FEE_TEXT,
    GRACE_TEXT,
    RATE_TEXT,
    REPAYMENT_TEXT,
    TENOR_TEXT,
)
from gateway.contract.schema import Doc

# ----------------------------------------------------------------------------- wire formats
Money = Annotated[str, Doc(ref="Money")]
Rate = Annotated[str, Doc(ref="Rate")]
Apr = Annotated[str, Doc(ref="Apr")]
Timestamp = Annotated[str, Doc(ref="Timestamp")]
Id = Annotated[str, Doc(ref="Id")]
State = Annotated[str, Doc(ref="RoundState")]
Currency = Annotated[str, Doc(ref="Currency")]
LoanType = Annotated[str, Doc(ref="LoanType")]
RepaymentPeriod = Annotated[int, Doc(schema={"type": "integer",
                                             "enum": list(L.REPAYMENT_PERIODS)})]


# ----------------------------------------------------------------------------- problems
class FieldErrorOut(TypedDict):
    field: Annotated[str, Doc("The field (dotted path for nested fields, e.g. "
                              "`company.tax_id`; empty for the body itself).")]
    code: Annotated[str, Doc("A stable machine code such as required, invalid, not_positive, "
                             "above_requested, unknown_field, currency_mismatch.",
                             examples=["required"])]
    message: Annotated[str, Doc("A human message.")]


class Problem(TypedDict):
    """An error (RFC 9457), sent as application/problem+json."""

    type: Annotated[str, Doc("A URI naming the problem type.", format="uri")]
    title: Annotated[str, Doc("A short human summary of the problem type.")]
    status: Annotated[int, Doc("The HTTP status code.", minimum=400, maximum=599)]
    code: Annotated[str, Doc("The stable machine code; branch on this, never on title or "
                             "detail.", examples=["round_closed"])]
    detail: Annotated[str, Doc("A human explanation of this occurrence.")]
    instance: NotRequired[Annotated[str, Doc("The request path this problem occurred on.",
                                             format="uri-reference")]]
    errors: NotRequired[Annotated[list[FieldErrorOut], Doc(
        "Every offending field (422 validation_failed).")]]


# ----------------------------------------------------------------------------- rounds
class Contact(TypedDict, total=False):
    """Company contact; every field optional."""

    name: Annotated[str, Doc("Contact person.")]
    email: Annotated[str, Doc("E-mail address.")]
    phone: Annotated[str, Doc("Phone number.")]


class Company(TypedDict):
    name: Annotated[str | None, Doc("Trade name (null once the company's consent is "
                                    "withdrawn).")]
    tax_id: Annotated[str | None, Doc("Turkish tax id (VKN, 10 digits) or TCKN (11 digits); "
                                      "null once the consent is withdrawn.")]
    is_sme: Annotated[bool | None, Doc("The company is an SME (KOBİ).")]
    sector: Annotated[str | None, Doc("Sector.")]
    contact: Contact


class Assessment(TypedDict, total=False):
    """The scoring of the application (score, band, financials, risk, exports); null for
    rounds opened by the operator without one; only consent_withdrawn and note once the
    company withdrew its consent."""

    score: Annotated[float, Doc("Credit score.")]
    band: Annotated[str, Doc("Risk band.")]
    financials: Annotated[dict[str, Any], Doc("Financial ratios used.")]
    risk: Annotated[dict[str, Any], Doc("Risk findings.")]
    exports: Annotated[dict[str, Any], Doc("Export history used.")]
    consent_withdrawn: Annotated[bool, Doc("The company withdrew its consent: its data is "
                                           "hidden.")]
    note: Annotated[str, Doc("Why the data is hidden.")]
    preferred_banks: Annotated[list[str], Doc(
        "The exporter's bank preferences as the caller may see them: to a bank, its own "
        "code when the exporter named it and nothing else (never which other banks were "
        "named); to the operator, the whole list.")]


class Round(TypedDict):
    """An offer round (one approved application) as banks see it in the pool."""

    round_id: Id
    state: State
    opened_at: Timestamp
    closes_at: Annotated[str, Doc("Offers are accepted strictly before this time.",
                                  ref="Timestamp")]
    currency: Currency
    loan_type: LoanType
    loan_amount: Annotated[str, Doc("Requested loan amount.", ref="Money")]
    guarantee_amount: Annotated[str, Doc("Amount guaranteed by the guarantee fund.",
                                         ref="Money")]
    guarantee_rate: Annotated[str, Doc("guarantee_amount / loan_amount, percent.", ref="Rate")]
    tenor_months: Annotated[int, Doc("Requested tenor in months.", minimum=1)]
    grace_months: Annotated[int, Doc("Requested grace period in months.", minimum=0)]
    export_commitment: Annotated[bool, Doc("The loan carries an export commitment.")]
    company: Company
    assessment: Assessment | None
    has_my_offer: NotRequired[Annotated[bool, Doc(
        "Bank views only: this bank has an offer in the round.")]]
    closed_at: NotRequired[Annotated[str, Doc("Present once the round has closed.",
                                              ref="Timestamp")]]
    binding_until: NotRequired[Annotated[str, Doc(
        "Present once the round has closed: offers stay binding until then.", ref="Timestamp")]]


class Offer(TypedDict):
    """An offer as the bank that made it sees it."""

    offer_id: Id
    round_id: Id
    version: Annotated[int, Doc("1 for a new offer, +1 on every revision; every version is "
                                "kept.", minimum=1)]
    seq: Annotated[int, Doc("The round event number of this version.", minimum=1)]
    accepted_at: Annotated[str, Doc("When the server accepted this version.", ref="Timestamp")]
    rank: Annotated[int | None, Doc("Current rank in the round (1 is best); null when "
                                    "unknown.", minimum=1)]
    apr: Apr
    label: Annotated[str, Doc("This bank's masked name in this round (e.g. \"Banka C\").")]
    annual_rate: Annotated[str, Doc(RATE_TEXT, ref="Rate")]
    amount: Annotated[str, Doc(AMOUNT_TEXT, ref="Money")]
    tenor_months: Annotated[int, Doc(TENOR_TEXT, minimum=L.TENOR_MIN, maximum=L.TENOR_MAX)]
    grace_months: Annotated[int, Doc(GRACE_TEXT, minimum=0, maximum=L.GRACE_MAX)]
    repayment_every_months: Annotated[int, Doc(REPAYMENT_TEXT, schema={
        "type": "integer", "enum": list(L.REPAYMENT_PERIODS)})]
    upfront_fee: Annotated[str, Doc(FEE_TEXT, ref="Money")]
    assumes_export_commitment: Annotated[bool, Doc(COMMITMENT_TEXT)]
    conditions: Annotated[str, Doc(CONDITIONS_TEXT, maxLength=L.CONDITIONS_MAX)]


class RoundDetail(Round):
    """ROUND plus the caller's own offers."""

    my_offers: Annotated[list[Offer], Doc("This bank's own offers (latest version of each).")]


class RoundList(TypedDict):
    rounds: list[Round]
    next_cursor: Annotated[str | None, Doc("Pass as `cursor` for the next page; null at the "
                                           "end.")]


class AdminRound(Round):
    """ROUND as the operator sees it."""

    application_id: Annotated[str | None, Doc("The application, if the round belongs to an "
                                              "exporter's application.")]
    exporter_user_id: Annotated[str | None, Doc("The exporter who may follow and accept the "
                                                "round.")]
    persisted_seq: NotRequired[Annotated[int, Doc(
        "GET only: the last event seq copied to the database.", minimum=0)]]
    reference_number: NotRequired[Annotated[str, Doc(
        "GET only, after close: the round's reference number.")]]


# ----------------------------------------------------------------------------- the book
class BookEntry(TypedDict):
    """One offer in the masked book. No bank id, code, name or other bank's offer_id ever
    appears; offer_id and conditions are present only on the caller's own offers."""

    ref: Annotated[str, Doc("Opaque per-offer handle (carries no bank identity), stable "
                            "across the offer's versions: a quote's `offer.ref` names the "
                            "entry it replaces.")]
    label: Annotated[str, Doc("Masked bank name, random per round, stable for one bank within "
                              "the round and unlinkable across rounds.",
                              examples=["Banka C"])]
    rank: Annotated[int, Doc("1 is best.", minimum=1)]
    mine: Annotated[bool, Doc("The offer belongs to the caller.")]
    annual_rate: Rate
    apr: Apr
    amount: Money
    tenor_months: Annotated[int, Doc("Tenor in months.", minimum=1)]
    grace_months: Annotated[int, Doc("Grace period in months.", minimum=0)]
    repayment_every_months: RepaymentPeriod
    upfront_fee: Money
    assumes_export_commitment: bool
    version: Annotated[int, Doc("Version of this offer.", minimum=1)]
    seq: Annotated[int, Doc(
        "The round event that accepted this version: with `apr` and `annual_rate` the "
        "ranking key (lower apr, then lower annual_rate, then lower seq ranks first).",
        minimum=1)]
    updated_at: Annotated[str, Doc("When this version was accepted.", ref="Timestamp")]
    offer_id: NotRequired[Annotated[str, Doc("Only when mine.", ref="Id")]]
    conditions: NotRequired[Annotated[str, Doc("Only when mine.", maxLength=L.CONDITIONS_MAX)]]


#: the masking rule, as a schema condition on BOOK_ENTRY
BOOK_ENTRY_MASKING: dict[str, Any] = {
    "if": {"properties": {"mine": {"const": True}}, "required": ["mine"]},
    "then": {"required": ["offer_id", "conditions"]},
    "else": {"not": {"anyOf": [{"required": ["offer_id"]}, {"required": ["conditions"]}]}},
}


class Book(TypedDict):
    """The masked order book of one round, for a bank that has bid in it."""

    round_id: Id
    seq: Annotated[int, Doc("The round's last event number reflected here.", minimum=0)]
    server_time: Timestamp
    closes_at: Timestamp
    state: State
    my_label: NotRequired[Annotated[str, Doc("The caller's masked name in this round.")]]
    offers: Annotated[list[BookEntry], Doc("Every live offer, best first.")]


# ----------------------------------------------------------------------------- results
class ResultOffer(Offer):
    final_rank: Annotated[int, Doc("Rank at the close.", minimum=1)]
    binding: Annotated[bool, Doc("The offer binds the bank until binding_until.")]
    chosen: Annotated[bool, Doc("The exporter accepted this offer.")]


class Result(TypedDict):
    """A closed round's outcome for one bank."""

    round_id: Id
    state: State
    reference_number: Annotated[str, Doc("The round's reference number.")]
    closed_at: Timestamp
    binding_until: Timestamp
    my_offers: Annotated[list[ResultOffer], Doc("This bank's offers at the close.")]


class ExporterOffer(TypedDict):
    offer_id: Id
    bank_code: Annotated[str | None, Doc("The bank's code.")]
    bank_name: Annotated[str | None, Doc("The bank's name (shown to the exporter only after "
                                         "the close).")]
    rank: Annotated[int, Doc("Final rank (1 is best).", minimum=1)]
    version: Annotated[int, Doc("Final version of the offer.", minimum=1)]
    apr: Apr
    annual_rate: Annotated[str, Doc(RATE_TEXT, ref="Rate")]
    amount: Annotated[str, Doc(AMOUNT_TEXT, ref="Money")]
    tenor_months: Annotated[int, Doc(TENOR_TEXT, minimum=L.TENOR_MIN, maximum=L.TENOR_MAX)]
    grace_months: Annotated[int, Doc(GRACE_TEXT, minimum=0, maximum=L.GRACE_MAX)]
    repayment_every_months: Annotated[int, Doc(REPAYMENT_TEXT, schema={
        "type": "integer", "enum": list(L.REPAYMENT_PERIODS)})]
    upfront_fee: Annotated[str, Doc(FEE_TEXT, ref="Money")]
    assumes_export_commitment: Annotated[bool, Doc(COMMITMENT_TEXT)]
    conditions: Annotated[str, Doc(CONDITIONS_TEXT, maxLength=L.CONDITIONS_MAX)]


class ExporterResults(TypedDict):
    """A closed round's offers, for the exporter."""

    application_id: str | None
    round_id: Id
    state: State
    reference_number: Annotated[str, Doc("The round's reference number.")]
    closed_at: Timestamp
    binding_until: Annotated[str, Doc("Offers can be accepted until then.", ref="Timestamp")]
    accepted_offer_id: Annotated[str | None, Doc("The accepted offer, once one is accepted.")]
    offers: Annotated[list[ExporterOffer], Doc("The binding offers, best first.")]


# ----------------------------------------------------------------------------- applications
class Reason(TypedDict):
    code: Annotated[str, Doc("Stable reason code, e.g. group_limit_exceeded, "
                             "non_performing_loan, score_below_pass_mark, score_passed.")]
    text: str
    kind: NotRequired[Annotated[Literal["intake", "hard_rule", "score", "note"], Doc(
        "intake: a guarantee rule; hard_rule: rejects whatever the score; score; note: no "
        "effect.")]]
    field: NotRequired[Annotated[str, Doc("The form field concerned.")]]
    params: NotRequired[Annotated[dict[str, str], Doc(
        "The numbers and names in text, by name, as decimal strings (money in TL with 2 "
        "places, percentages): what a page needs to word the reason in its own language.")]]


class Factor(TypedDict):
    name: str
    group: Literal["financials", "risk", "exports"]
    value: Annotated[str | None, Doc("The measured value (decimal string).")]
    points: Annotated[int, Doc("Points of the factor.", minimum=0, maximum=100)]
    weight: Annotated[int, Doc("Weight of the factor.", minimum=0)]


class Decision(TypedDict, total=False):
    """The decision: by the scorecard (İDES: score 0..100, band A..E and every reason), or by
    the guarantee institution's operator for an application it took in by hand (reason
    `operator_intake`; a score and band only when the operator gave them)."""

    decided_by: Annotated[Literal["scorecard", "operator"], Doc(
        "scorecard: decided here by the rules and the scorecard; operator: taken in by the "
        "operator (POST /v1/admin/rounds), who decided outside the portal.")]
    actor: Annotated[str, Doc("Who decided, for the operator's decisions (e.g. admin).")]
    score: float
    band: str
    pass_mark: Annotated[int, Doc("The score needed to pass.")]
    reasons: list[Reason]
    factors: Annotated[list[Factor], Doc("The scorecard: score = weighted mean of the points, "
                                         "rounded half up.")]
    package_version: str


class ApplicationRound(TypedDict):
    round_id: Id
    state: NotRequired[State]
    opened_at: NotRequired[Timestamp]
    closes_at: Timestamp
    closed_at: NotRequired[Timestamp]
    binding_until: NotRequired[Timestamp]


class ApplicationCompany(TypedDict, total=False):
    company_id: Id
    tax_id: str
    name: str | None


class RelatedCompanyOut(TypedDict):
    tax_id: str
    relation: str
    share_pct: str


class ApplicationRequestOut(TypedDict, total=False):
    """The application form as received."""

    loan_type: LoanType
    currency: Currency
    loan_amount: Money
    guarantee_amount: Money
    guarantee_rate: Annotated[str | None, Doc("guarantee_amount / loan_amount, percent.",
                                              ref="Rate")]
    tenor_months: int
    grace_months: int
    related_companies: Annotated[list[RelatedCompanyOut], Doc(
        schema={"type": "array", "items": {"$ref": "#/components/schemas/RELATED_COMPANY"}})]
    preferred_banks: list[str]
    export_commitment: bool
    purpose: str


class Application(TypedDict):
    """An exporter's loan application."""

    application_id: Id
    status: Literal["approved", "rejected"]
    decision: Decision | None
    round: Annotated[ApplicationRound | None, Doc(
        "The offer round (null when rejected). No offer data is shown while the round is "
        "open.")]
    created_at: NotRequired[Annotated[str, Doc("When the application was decided.",
                                               ref="Timestamp")]]
    company: NotRequired[ApplicationCompany]
    package_version: NotRequired[Annotated[str, Doc(
        "The guarantee package in force at the decision.")]]
    request: NotRequired[ApplicationRequestOut]


class AdminApplication(Application):
    user_id: Annotated[str | None, Doc("The exporter it belongs to; null for an intake that "
                                       "named none.")]
    inputs: dict[str, Any]
    package: dict[str, Any]


class Consent(TypedDict):
    text_version: Annotated[str, Doc("The consent text version accepted.")]
    accepted_at: Timestamp
    withdrawn_at: Annotated[str | None, Doc(ref="Timestamp")]
    active: Annotated[bool, Doc("The company has an active consent: it may apply and its data "
                                "is shown to banks.")]


class CompanyOut(TypedDict):
    """A company the caller is matched to."""

    company_id: Id
    tax_id: Annotated[str, Doc("VKN or TCKN.")]
    name: Annotated[str, Doc("Trade name from the trade registry.")]
    sector: str | None
    is_sme: Annotated[bool, Doc("SME (KOBİ) per the trade registry.")]
    active: Annotated[bool, Doc("Active in the trade registry at the last match.")]
    signatory: Annotated[bool, Doc("The caller is an authorised signatory (always true here).")]
    matched_at: Timestamp
    consent: Annotated[Consent | None, Doc("The company's latest consent (muvafakatname).")]
    open_rounds_hidden: NotRequired[Annotated[int, Doc(
        "DELETE consent only: open rounds whose company data is now hidden from banks.",
        minimum=0)]]


class CompanyList(TypedDict):
    companies: list[CompanyOut]


class ApplicationList(TypedDict):
    applications: list[Application]


class ConsentText(TypedDict):
    text_version: str
    text: str


class GuaranteePackageOut(TypedDict):
    package: dict[str, Any]
    consent: ConsentText


# ----------------------------------------------------------------------------- accounts, tokens
class Token(TypedDict):
    access_token: Annotated[str, Doc("Bearer token.")]
    token_type: Annotated[Literal["Bearer"], Doc(schema={"type": "string", "const": "Bearer"})]
    expires_in: Annotated[int, Doc("Lifetime in seconds.", minimum=1)]
    bank_code: Annotated[str, Doc("The bank's code.")]


class ExporterToken(TypedDict):
    access_token: Annotated[str, Doc("Bearer token.")]
    token_type: Annotated[Literal["Bearer"], Doc(schema={"type": "string", "const": "Bearer"})]
    expires_in: Annotated[int, Doc("Lifetime in seconds.", minimum=1)]


class Registered(TypedDict):
    user_id: Id
    totp_uri: Annotated[str, Doc("otpauth:// URI for an authenticator app (RFC 6238).")]


class Activated(TypedDict):
    user_id: Id
    active: Literal[True]


class Ticket(TypedDict):
    ticket: Annotated[str, Doc("Single use; pass as `?ticket=` to /v1/stream.")]
    expires_in: Annotated[int, Doc("Seconds.", minimum=1)]


class Bank(TypedDict):
    bank_id: Id
    bank_code: Annotated[str, Doc("Code.")]
    name: Annotated[str, Doc("Name.")]
    client_id: Annotated[str, Doc("OAuth2 client id.")]
    active: bool


class BankCredentials(TypedDict):
    bank_id: Id
    bank_code: Annotated[str, Doc("Code.")]
    name: Annotated[str, Doc("Name.")]
    client_id: Annotated[str, Doc("OAuth2 client id.")]
    client_secret: Annotated[str, Doc("OAuth2 client secret; shown once, stored only as a "
                                      "hash.")]


class BankList(TypedDict):
    banks: list[Bank]


class DeskUser(TypedDict):
    """A person at a bank with a login of their own (the pages under /desk)."""

    user_id: Id
    bank_id: Id
    email: Annotated[str, Doc("E-mail address (the login).")]
    full_name: str
    role: Annotated[str, Doc("viewer: sees books and results; trader: also offers; admin: "
                             "the bank's user administrator (sees what a viewer sees, manages "
                             "the bank's own desk users on the desk pages).",
                             enum=["viewer", "trader", "admin"])]
    active: Annotated[bool, Doc("Activated: a password chosen and a first one-time code "
                                "given.")]
    status: Annotated[str, Doc("pending: the activation code is outstanding; active: signs "
                               "in; deactivated: no sign-in, no activation, no session.",
                               enum=["pending", "active", "deactivated"])]
    created_at: Timestamp


class DeskUserCreated(DeskUser):
    activation_code: Annotated[str, Doc(
        "One-time activation code, shown once (stored only as a hash): the person enters it "
        "with their e-mail at `activation_url` to choose a password and an authenticator.")]
    activation_url: Annotated[str, Doc("The activation page, relative to this server.")]
    activation_expires_at: Timestamp


class DeskUserList(TypedDict):
    users: list[DeskUser]


class OperatorCreated(TypedDict):
    """A person of the guarantee institution with a login for the console (``/operator``)."""

    user_id: Id
    email: Annotated[str, Doc("E-mail address (the login).")]
    full_name: str
    active: Annotated[bool, Doc("Activated: a password chosen and a first one-time code "
                                "given (false here).")]
    created_at: Timestamp
    activation_code: Annotated[str, Doc(
        "One-time activation code, shown once (stored only as a hash): the person enters it "
        "with their e-mail at `activation_url` to choose a password and an authenticator.")]
    activation_url: Annotated[str, Doc("The activation page, relative to this server.")]
    activation_expires_at: Timestamp


class ExporterAccount(TypedDict):
    """An exporter account as the operator sees it (to unlock it, say)."""

    user_id: Id
    email: Annotated[str, Doc("E-mail address (the login).")]
    full_name: str
    active: Annotated[bool, Doc("Activated with a first one-time code.")]
    failed_attempts: Annotated[int, Doc("Failed logins since the last good one.", minimum=0)]
    locked: Annotated[bool, Doc("Too many failed attempts: no login until the operator "
                                "unlocks it (POST /v1/admin/exporters/{user_id}/unlock).")]
    created_at: Timestamp


class ExporterAccountList(TypedDict):
    exporters: list[ExporterAccount]


class AuditEntry(TypedDict):
    id: Annotated[int, Doc("Monotonic entry id.", minimum=1)]
    at: Timestamp
    actor: Annotated[str, Doc("Who acted: admin, bank:<id>, exporter:<id>, system.")]
    action: Annotated[str, Doc("What happened, e.g. bank_created, round_opened.")]
    round_id: str | None
    detail: Annotated[dict[str, Any], Doc(
        "What the action was about, in the contract's shapes: money as decimal strings "
        "(`loan_amount`, `amount`, `guarantee_tl`...), rates as percent strings (`apr`, "
        "`annual_rate`, `fx_rate`), times as UTC timestamps (`closes_at`, `binding_until`), "
        "ids, codes and counts as they are.")]


class AuditPage(TypedDict):
    entries: list[AuditEntry]
    next_after_id: Annotated[int | None, Doc("Pass as after_id for the next page.")]


# ----------------------------------------------------------------------------- public
class Alive(TypedDict):
    status: Literal["ok"]


class ReadinessChecks(TypedDict):
    redis: Annotated[str, Doc("ok or error: <kind>")]
    database: Annotated[str, Doc("ok or error: <kind>")]
    book: Annotated[str, Doc("ok; rebuilding from the moment Redis lost its data set until "
                             "the open rounds are rebuilt from SQL; or error: <kind>")]


class Readiness(TypedDict):
    status: Literal["ok", "unavailable"]
    checks: ReadinessChecks


class Deadline(TypedDict):
    start: Timestamp
    business_days: int
    deadline: Timestamp


class Holiday(TypedDict):
    date: Annotated[str, Doc(schema={"type": "string", "format": "date"})]
    name: str


class Holidays(TypedDict):
    year: int
    half_days_off: Annotated[bool, Doc("Half-day eves (arife) count as holidays.")]
    holidays: list[Holiday]


# ----------------------------------------------------------------------------- stream
Topic = Annotated[str, Doc(ref="StreamTopic")]
#: the largest seq a client may name (a Redis stream id's 64 bits)
SEQ_MAX = 2**63 - 1
Seq = Annotated[int, Doc("Rises by exactly 1 per event of the round.", minimum=1)]


class StreamSubscribe(TypedDict):
    op: Literal["subscribe"]
    topic: Topic
    since_seq: NotRequired[Annotated[int, Doc(
        "Round topics: the last seq the client has; the server sends the events after it, or "
        "a snapshot when they do not fit in the connection's send queue (more than "
        "{catch_up} events behind with the default queue; never more than {max_catch_up}) or "
        "when it is ahead of the round. Omit for a snapshot.",
        minimum=0, maximum=SEQ_MAX)]]


class StreamUnsubscribe(TypedDict):
    op: Literal["unsubscribe"]
    topic: Topic


class StreamPing(TypedDict):
    op: Literal["ping"]


class StreamSnapshot(Book):
    """The round's BOOK: on subscribe, after a too-old since_seq, after a resync, and for a
    bank that subscribed before bidding once it bids. The stream continues with seq + 1."""

    type: Literal["snapshot"]
    topic: Topic


class StreamQuote(TypedDict):
    """One offer added or revised in the round. Its size and cost do not grow with the book:
    it does not restate the other offers' ranks. A client keeps the order itself by the
    ranking key every entry carries (apr, then annual_rate, then seq); the entry with the same
    `ref` is replaced; a fresh snapshot always equals the book built from quotes."""

    type: Literal["quote"]
    topic: Topic
    seq: Seq
    offer: Annotated[BookEntry, Doc("The offer added or revised, masked as in BOOK, with its "
                                    "new rank.")]
    book_size: Annotated[int, Doc("How many live offers the book holds after this quote.",
                                  minimum=1)]


class StreamRoundOpened(TypedDict):
    """Topic pool: a new round is open for offers."""

    type: Literal["round_opened"]
    topic: Literal["pool"]
    round: Round


class StreamRoundClosed(TypedDict):
    """The round closed. Round topics carry seq and closed_at; application topics carry the
    results."""

    type: Literal["round_closed"]
    topic: Topic
    seq: NotRequired[Seq]
    closed_at: NotRequired[Timestamp]
    results: NotRequired[Annotated[ExporterResults, Doc(
        "Application topics: the offers, after close.")]]


class StreamHeartbeat(TypedDict):
    """Every {heartbeat} s on every connection."""

    type: Literal["heartbeat"]
    topic: None
    server_time: Timestamp


class StreamPong(TypedDict):
    """The answer to ping."""

    type: Literal["pong"]
    topic: None
    server_time: Timestamp


STREAM_ERROR_CODES = ("offer_required", "not_found", "validation_failed", "bad_command",
                      "unavailable", "too_many_topics")


#: declarations that extend another component: documented as ``allOf`` [base, own fields]
#: (Python 3.11 does not record a TypedDict's TypedDict bases)
EXTENDS: dict[type, type] = {}


class StreamError(TypedDict):
    """A refused command; the connection stays open."""

    type: Literal["error"]
    topic: str | None
    code: Annotated[str, Doc(
        "offer_required: a bank subscribed to a round before its first offer (the snapshot "
        "follows that offer automatically); not_found: no such topic for this caller; "
        "validation_failed: since_seq is not an integer; bad_command: not a "
        "subscribe/unsubscribe/ping message; unavailable: the server cannot follow the topic "
        "right now (a backing service is down): subscribe again; too_many_topics: the "
        "connection follows as many topics as it may (IGE_TOPICS_PER_CONNECTION).",
        schema={"type": "string", "enum": list(STREAM_ERROR_CODES)})]
    detail: NotRequired[Annotated[str, Doc("A human explanation.")]]


EXTENDS.update({RoundDetail: Round, AdminRound: Round, ResultOffer: Offer,
                StreamSnapshot: Book, AdminApplication: Application})
