"""The registry as a product: scoped, expiring tokens; robot accounts; pull counts; audit
attribution

Revision ID: 0500
Revises: 0400
api_tokens gain a scope (read/push/admin), an optional repository, an expiry and the address
of their last use; users gain is_robot and a description (robot accounts for CI); pull_counts
holds downloads per repository, version and day; audit_events record what kind of actor
acted and, for the registry's own actions, what triggered them. Existing tokens keep their
full power (scope admin, every repository, no expiry).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0500'
down_revision = '0400'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pull_counts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=255), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'],
                            name=op.f('fk_pull_counts_repository_id_repositories'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pull_counts')),
    sa.UniqueConstraint('repository_id', 'version', 'day',
                        name=op.f('uq_pull_counts_repository_id'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        # Tokens made before scopes existed keep doing what they did.
        batch_op.add_column(sa.Column('scope', sa.String(length=16), nullable=False,
                                      server_default='admin'))
        batch_op.add_column(sa.Column('repository_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_used_addr', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_api_tokens_repository_id'), ['repository_id'],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_api_tokens_repository_id_repositories'),
                                    'repositories', ['repository_id'], ['id'],
                                    ondelete='CASCADE')

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('triggered_by', sa.String(length=512), nullable=True))
        batch_op.create_index(batch_op.f('ix_audit_events_actor'), ['actor'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_robot', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('description', sa.String(length=255), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('description')
        batch_op.drop_column('is_robot')

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_actor'))
        batch_op.drop_column('triggered_by')
        batch_op.drop_column('actor_kind')

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_api_tokens_repository_id_repositories'),
                                 type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_api_tokens_repository_id'))
        batch_op.drop_column('last_used_addr')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('repository_id')
        batch_op.drop_column('scope')

    op.drop_table('pull_counts')
