"""OCI distribution: manifests, tags, blob links, chunked upload sessions, appc conversions

Revision ID: 0100
Revises: 0001
The tables of registry.server.oci.models (the registry's /v2/ API).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0100'
down_revision = '0001'
branch_labels = None
depends_on = None


def _repository_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], ondelete='CASCADE',
                                   name=op.f(f'fk_{table}_repository_id_repositories'))


def _index(table: str, column: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f'ix_{table}_{column}'), [column], unique=False)


def upgrade() -> None:
    op.create_table('oci_blob_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=140), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    _repository_fk('oci_blob_links'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oci_blob_links')),
    sa.UniqueConstraint('repository_id', 'digest', name=op.f('uq_oci_blob_links_repository_id'))
    )
    _index('oci_blob_links', 'repository_id')
    _index('oci_blob_links', 'digest')

    op.create_table('oci_manifests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=140), nullable=False),
    sa.Column('media_type', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    _repository_fk('oci_manifests'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oci_manifests')),
    sa.UniqueConstraint('repository_id', 'digest', name=op.f('uq_oci_manifests_repository_id'))
    )
    _index('oci_manifests', 'repository_id')

    op.create_table('oci_tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('manifest_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['manifest_id'], ['oci_manifests.id'], ondelete='CASCADE',
                            name=op.f('fk_oci_tags_manifest_id_oci_manifests')),
    _repository_fk('oci_tags'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oci_tags')),
    sa.UniqueConstraint('repository_id', 'name', name=op.f('uq_oci_tags_repository_id'))
    )
    _index('oci_tags', 'repository_id')
    _index('oci_tags', 'manifest_id')

    op.create_table('oci_uploads',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('repository_name', sa.String(length=512), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    _repository_fk('oci_uploads'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oci_uploads'))
    )
    _index('oci_uploads', 'repository_id')
    _index('oci_uploads', 'updated_at')

    op.create_table('oci_conversions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=128), nullable=False),
    sa.Column('os', sa.String(length=32), nullable=False),
    sa.Column('arch', sa.String(length=32), nullable=False),
    sa.Column('manifest_digest', sa.String(length=140), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('image_digest', sa.String(length=80), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    _repository_fk('oci_conversions'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oci_conversions')),
    sa.UniqueConstraint('repository_id', 'version', 'os', 'arch',
                        name=op.f('uq_oci_conversions_repository_id'))
    )
    _index('oci_conversions', 'repository_id')


def downgrade() -> None:
    op.drop_table('oci_conversions')
    op.drop_table('oci_uploads')
    op.drop_table('oci_tags')
    op.drop_table('oci_manifests')
    op.drop_table('oci_blob_links')
