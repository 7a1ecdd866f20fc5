"""labelling: people, label versions, votes, comments, audit log, saved subgraphs

Existing labels get a uuid and their text as version 1 (action "create", by their author), so
every label has a history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 03:24:23.592105
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)

    op.create_table('sign_in_failures',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sign_in_failures'))
    )
    op.create_table('subgraphs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('graph_slug', sa.String(length=300), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('pinned_ids', sa.JSON(), nullable=False),
    sa.Column('supernodes', sa.JSON(), nullable=False),
    sa.Column('clerps', sa.JSON(), nullable=False),
    sa.Column('thresholds', sa.JSON(), nullable=False),
    sa.Column('view', sa.JSON(), nullable=False),
    sa.Column('origin', sa.String(length=100), nullable=True),
    sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subgraphs')),
    sa.UniqueConstraint('graph_slug', 'name', name=op.f('uq_subgraphs_graph_slug_name')),
    sa.UniqueConstraint('uuid', name=op.f('uq_subgraphs_uuid'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('comments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('feature_id', sa.Integer(), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['feature_id'], ['features.id'], name=op.f('fk_comments_feature_id_features')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comments')),
    sa.UniqueConstraint('uuid', name=op.f('uq_comments_uuid'))
    )
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.create_index('ix_comments_feature', ['feature_id'], unique=False)

    op.create_table('sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_sessions'))
    )
    op.create_table('label_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('label_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('based_on', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('editor', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['label_id'], ['labels.id'], name=op.f('fk_label_versions_label_id_labels'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_versions')),
    sa.UniqueConstraint('label_id', 'version', name=op.f('uq_label_versions_label_id_version'))
    )
    op.create_table('label_votes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('label_id', sa.Integer(), nullable=False),
    sa.Column('voter', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['label_id'], ['labels.id'], name=op.f('fk_label_votes_label_id_labels'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_votes')),
    sa.UniqueConstraint('label_id', 'voter', name=op.f('uq_label_votes_label_id_voter'))
    )
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uuid', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('node_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('confidence', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default=sa.text("'proposed'"), nullable=False))
        batch_op.add_column(sa.Column('status_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False))
        batch_op.add_column(sa.Column('edited_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('up_votes', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('down_votes', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.drop_constraint(batch_op.f('uq_labels_feature_id_author_graph_slug_text'), type_='unique')
    _give_existing_labels_a_uuid()
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.alter_column('uuid', existing_type=sa.String(length=36), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_labels_uuid'), ['uuid'])
    # only now: on SQLite a batch operation recreates `labels`, and dropping the old table
    # deletes, through ON DELETE CASCADE, the versions and votes that point at it
    _give_existing_labels_a_first_version()


def _give_existing_labels_a_uuid() -> None:
    bind = op.get_bind()
    labels = sa.table('labels', sa.column('id'), sa.column('uuid'))
    for (label_id,) in bind.execute(sa.select(labels.c.id)).all():
        bind.execute(sa.update(labels).where(labels.c.id == label_id).values(uuid=str(uuid.uuid4())))


def _give_existing_labels_a_first_version() -> None:
    bind = op.get_bind()
    labels = sa.table('labels', sa.column('id'), sa.column('author'), sa.column('text'), sa.column('created_at'))
    versions = sa.table(
        'label_versions',
        sa.column('label_id'), sa.column('version'), sa.column('action'), sa.column('text'), sa.column('editor'), sa.column('created_at'),
    )
    rows = bind.execute(sa.select(labels.c.id, labels.c.author, labels.c.text, labels.c.created_at)).all()
    if rows:
        bind.execute(
            sa.insert(versions),
            [
                {"label_id": r.id, "version": 1, "action": "create", "text": r.text, "editor": r.author, "created_at": r.created_at}
                for r in rows
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_labels_uuid'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_labels_feature_id_author_graph_slug_text'), ['feature_id', 'author', 'graph_slug', 'text'])
        batch_op.drop_column('down_votes')
        batch_op.drop_column('up_votes')
        batch_op.drop_column('edited_by')
        batch_op.drop_column('version')
        batch_op.drop_column('status_by')
        batch_op.drop_column('status')
        batch_op.drop_column('confidence')
        batch_op.drop_column('note')
        batch_op.drop_column('node_id')
        batch_op.drop_column('uuid')

    op.drop_table('label_votes')
    op.drop_table('label_versions')
    op.drop_table('sessions')
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.drop_index('ix_comments_feature')

    op.drop_table('comments')
    op.drop_table('users')
    op.drop_table('subgraphs')
    op.drop_table('sign_in_failures')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_at')

    op.drop_table('audit_log')
