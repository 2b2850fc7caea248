"""Login throttling: failed attempts per account and per client address

Revision ID: 0510
Revises: 0500
The table of registry.server.models.LoginThrottle (services.throttle).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0510'
down_revision = '0500'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_throttle',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_throttle')),
    sa.UniqueConstraint('scope', 'key', name=op.f('uq_login_throttle_scope'))
    )


def downgrade() -> None:
    op.drop_table('login_throttle')
