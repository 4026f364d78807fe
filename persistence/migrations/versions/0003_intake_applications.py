"""an operator's intake is an application too

Revision ID: 0003
Revises: 0002

Applications taken in by the operator (``POST /v1/admin/rounds``) have no matched company, no
scorecard and, without an exporter, no user: those columns may be empty. Every round taken in
before this revision with an application id (the operator named its exporter) gets the
application record an intake writes now (``applications.intake``, the package in force when the
round opened), so its exporter lists it and the operator sees it and its decision.
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa

from applications.intake import IntakeTerms, operator_application
from applications.package import package_in_force


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_NULLABLE = (('company_id', sa.String(length=40)), ('user_id', sa.String(length=40)),
             ('score', sa.Integer()), ('band', sa.String(length=2)))


def upgrade() -> None:
    with op.batch_alter_table('applications', schema=None) as batch_op:
        for name, type_ in _NULLABLE:
            batch_op.alter_column(name, existing_type=type_, nullable=True)
    bind = op.get_bind()
    meta = sa.MetaData()
    rounds = sa.Table('rounds', meta, autoload_with=bind)
    applications = sa.Table('applications', meta, autoload_with=bind)
    companies = sa.Table('companies', meta, autoload_with=bind)
    orphans = bind.execute(sa.select(rounds).where(
        rounds.c.application_id.is_not(None),
        ~sa.exists().where(applications.c.id == rounds.c.application_id))).mappings().all()
    for r in orphans:
        company = r['company'] or {}
        pkg = package_in_force(datetime.fromtimestamp(r['opened_at'] / 1000, UTC))
        app = operator_application(
            IntakeTerms(r['loan_type'], r['currency'], r['loan_amount'], r['guarantee_amount'],
                        r['tenor_months'], r['grace_months'], bool(r['export_commitment'])),
            company, r['assessment'], r['exporter_user_id'], 'operator', pkg)
        known = bind.execute(sa.select(companies.c.id).where(
            companies.c.tax_id == app.tax_id)).first() if app.tax_id else None
        bind.execute(sa.insert(applications).values(
            id=r['application_id'], company_id=known[0] if known else None, tax_id=app.tax_id,
            user_id=r['exporter_user_id'], status=app.status,
            package_version=app.package_version, currency=r['currency'],
            loan_amount=r['loan_amount'], guarantee_amount=r['guarantee_amount'],
            guarantee_tl=app.guarantee_tl, score=app.score, band=app.band,
            request=app.request, inputs=app.inputs, decision=app.decision,
            package=app.package, round_id=r['id'], created_at=r['opened_at']))


def downgrade() -> None:
    bind = op.get_bind()
    applications = sa.Table('applications', sa.MetaData(), autoload_with=bind)
    # the intakes' records: the columns they leave empty cannot be empty before this revision
    bind.execute(sa.delete(applications).where(sa.or_(
        applications.c.company_id.is_(None), applications.c.user_id.is_(None),
        applications.c.score.is_(None), applications.c.band.is_(None))))
    with op.batch_alter_table('applications', schema=None) as batch_op:
        for name, type_ in _NULLABLE:
            batch_op.alter_column(name, existing_type=type_, nullable=False)
