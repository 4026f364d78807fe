"""desk users: people at a bank with a login of their own (issue #8)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('desk_users',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('bank_id', sa.String(length=40), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=12), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('totp_secret', sa.String(length=64), nullable=True),
    sa.Column('activation_hash', sa.String(length=200), nullable=True),
    sa.Column('activation_until', sa.BigInteger(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    with op.batch_alter_table('desk_users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_desk_users_bank_id'), ['bank_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('desk_users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_desk_users_bank_id'))
    op.drop_table('desk_users')
