"""TLS: ACME account, certificate, challenges and status shared by every registry host

Revision ID: 0200
Revises: 0100
The table of registry.server.tls.models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0200'
down_revision = '0100'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tls_objects',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_tls_objects'))
    )


def downgrade() -> None:
    op.drop_table('tls_objects')
