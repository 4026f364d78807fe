"""SQL schema (SQLAlchemy Core). Times are integer milliseconds since the epoch (UTC), money is
integer minor units and rates are percent x 10^4: exact and identical on SQLite and PostgreSQL.

The Alembic migrations in persistence/migrations create exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

banks = Table(
    "banks", metadata,
    Column("id", String(40), primary_key=True),
    Column("code", String(20), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("client_id", String(64), nullable=False, unique=True),
    Column("secret_hash", String(200), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", BigInteger, nullable=False),
)

exporter_users = Table(
    "exporter_users", metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("full_name", String(200), nullable=False),
    Column("national_id", String(11), nullable=False),
    Column("mobile", String(20), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("totp_secret", String(64), nullable=False),
    Column("active", Boolean, nullable=False, default=False),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
)

desk_users = Table(
    "desk_users", metadata,  # people at a bank (issue #8): their own login under the bank
    Column("id", String(40), primary_key=True),
    Column("bank_id", String(40), nullable=False, index=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("full_name", String(200), nullable=False),
    Column("role", String(12), nullable=False),  # viewer | trader
    Column("password_hash", String(200)),  # empty until activated
    Column("totp_secret", String(64)),  # empty until activated
    Column("activation_hash", String(200)),  # the one-time activation code's hash
    Column("activation_until", BigInteger),  # the activation code is good until then
    Column("active", Boolean, nullable=False, default=False),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
)

operators = Table(
    "operators", metadata,  # the guarantee institution's people: the console (issue #8, 0005)
    Column("id", String(40), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("full_name", String(200), nullable=False),
    Column("password_hash", String(200)),  # empty until activated
    Column("totp_secret", String(64)),  # empty until activated
    Column("activation_hash", String(200)),  # the one-time activation code's hash
    Column("activation_until", BigInteger),  # the activation code is good until then
    Column("active", Boolean, nullable=False, default=False),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
)

rounds = Table(
    "rounds", metadata,
    Column("id", String(40), primary_key=True),
    Column("state", String(12), nullable=False, index=True),
    Column("opened_at", BigInteger, nullable=False),
    Column("closes_at", BigInteger, nullable=False, index=True),
    Column("closed_at", BigInteger),
    Column("binding_until", BigInteger),
    Column("currency", String(3), nullable=False),
    Column("loan_type", String(20), nullable=False),
    Column("loan_amount", BigInteger, nullable=False),
    Column("guarantee_amount", BigInteger, nullable=False),
    Column("tenor_months", Integer, nullable=False),
    Column("grace_months", Integer, nullable=False),
    Column("export_commitment", Boolean, nullable=False),
    Column("company", JSON, nullable=False),
    Column("assessment", JSON),
    Column("exporter_user_id", String(40), index=True),
    Column("application_id", String(40)),
    Column("label_pool", JSON, nullable=False),  # the round's shuffled masked names
    Column("persisted_seq", Integer, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
)

offer_versions = Table(
    "offer_versions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("round_id", String(40), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("offer_id", String(40), nullable=False, index=True),
    Column("ref", String(24), nullable=False),
    Column("bank_id", String(40), nullable=False, index=True),
    Column("label", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("apr_e4", BigInteger, nullable=False),
    Column("annual_rate_e4", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("tenor_months", Integer, nullable=False),
    Column("grace_months", Integer, nullable=False),
    Column("repayment_every_months", Integer, nullable=False),
    Column("upfront_fee", BigInteger, nullable=False),
    Column("assumes_export_commitment", Boolean, nullable=False),
    Column("conditions", Text, nullable=False),
    Column("accepted_at", BigInteger, nullable=False),
    UniqueConstraint("round_id", "seq", name="uq_offer_versions_round_seq"),
    UniqueConstraint("offer_id", "version", name="uq_offer_versions_offer_version"),
)

round_closings = Table(
    "round_closings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("round_id", String(40), nullable=False, unique=True),
    Column("reference_number", String(40), nullable=False, unique=True),
    Column("closed_at", BigInteger, nullable=False),
    Column("binding_until", BigInteger, nullable=False),
    Column("final_seq", Integer, nullable=False),
)

binding_offers = Table(
    "binding_offers", metadata,
    Column("round_id", String(40), primary_key=True),
    Column("offer_id", String(40), primary_key=True),
    Column("bank_id", String(40), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("final_rank", Integer, nullable=False),
)

acceptances = Table(
    "acceptances", metadata,
    Column("round_id", String(40), primary_key=True),
    Column("offer_id", String(40), nullable=False),
    Column("exporter_user_id", String(40), nullable=False),
    Column("accepted_at", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(80), nullable=False),
    Column("action", String(40), nullable=False),
    Column("round_id", String(40), index=True),
    Column("detail", JSON, nullable=False),
    # the console's filters, newest first (0005): one actor's or one action's entries, a
    # time range
    Index("ix_audit_log_actor_id", "actor", "id"),
    Index("ix_audit_log_action_id", "action", "id"),
    Index("ix_audit_log_at", "at"),
)

# ----------------------------------------------------------------------------- applications
# (issue #3: company matching, consent, applications with their decisions, exposure ledger)

companies = Table(
    "companies", metadata,
    Column("id", String(40), primary_key=True),
    Column("tax_id", String(11), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("sector", String(100)),
    Column("is_sme", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("registry", JSON, nullable=False),  # the trade-registry record at the last match
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

consents = Table(
    "consents", metadata,  # muvafakatname: who consented, to which text version, when
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("company_id", String(40), nullable=False, index=True),
    Column("user_id", String(40), nullable=False, index=True),
    Column("text_version", String(40), nullable=False),
    Column("accepted_at", BigInteger, nullable=False),
    Column("withdrawn_at", BigInteger),
    Column("withdrawn_by", String(40)),
)

applications = Table(
    "applications", metadata,
    Column("id", String(40), primary_key=True),
    # empty for an operator's intake: no company matched here; no exporter named (0003)
    Column("company_id", String(40), index=True),
    Column("tax_id", String(11), nullable=False, index=True),
    Column("user_id", String(40), index=True),
    Column("status", String(12), nullable=False),  # approved | rejected
    Column("package_version", String(40), nullable=False),  # the guarantee package in force
    Column("currency", String(3), nullable=False),
    Column("loan_amount", BigInteger, nullable=False),
    Column("guarantee_amount", BigInteger, nullable=False),
    Column("guarantee_tl", BigInteger, nullable=False),  # at the package's conversion rate
    Column("score", Integer),  # empty: the operator decided without a score (0003)
    Column("band", String(2)),
    Column("request", JSON, nullable=False),  # the form as parsed
    Column("inputs", JSON, nullable=False),  # everything the decision read
    Column("decision", JSON, nullable=False),  # score, band, reasons, factors
    Column("package", JSON, nullable=False),  # every number of the package in force
    Column("round_id", String(40), unique=True),  # the offer round, once approved and opened
    Column("created_at", BigInteger, nullable=False),
    Index("ix_applications_created_at_id", "created_at", "id"),  # the console's newest (0005)
)

guarantee_exposures = Table(
    "guarantee_exposures", metadata,  # the ledger: guarantees granted through the portal
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tax_id", String(11), nullable=False, index=True),
    Column("round_id", String(40), nullable=False, unique=True),  # one acceptance per round
    Column("application_id", String(40)),
    Column("offer_id", String(40), nullable=False),
    Column("bank_id", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("guarantee_amount", BigInteger, nullable=False),  # minor units of currency
    Column("guarantee_tl", BigInteger, nullable=False),  # kuruş TL
    Column("fx_rate_e4", BigInteger, nullable=False),  # TL per unit x 10^4 used
    Column("package_version", String(40), nullable=False),
    Column("granted_at", BigInteger, nullable=False),
)
