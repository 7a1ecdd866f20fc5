"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 22:20:20.613902
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('features',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('transcoder_set', sa.String(length=200), nullable=False),
    sa.Column('layer', sa.Integer(), nullable=False),
    sa.Column('index', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_features')),
    sa.UniqueConstraint('transcoder_set', 'layer', 'index', name=op.f('uq_features_transcoder_set_layer_index'))
    )
    op.create_table('graph_link_extra',
    sa.Column('graph_id', sa.Integer(), nullable=False),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('graph_id', name=op.f('pk_graph_link_extra'))
    )
    op.create_table('graph_links',
    sa.Column('graph_id', sa.Integer(), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('src', sa.Integer(), nullable=False),
    sa.Column('tgt', sa.Integer(), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('graph_id', 'idx', name=op.f('pk_graph_links')),
    sqlite_with_rowid=False
    )
    op.create_table('graph_nodes',
    sa.Column('graph_id', sa.Integer(), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.String(length=200), nullable=False),
    sa.Column('js_node_id', sa.String(length=200), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('feature_type', sa.String(length=64), nullable=False),
    sa.Column('layer', sa.String(length=16), nullable=False),
    sa.Column('layer_num', sa.Integer(), nullable=False),
    sa.Column('ctx_idx', sa.Integer(), nullable=False),
    sa.Column('feature', sa.BigInteger(), nullable=True),
    sa.Column('feature_id', sa.Integer(), nullable=True),
    sa.Column('clerp', sa.Text(), nullable=True),
    sa.Column('influence', sa.Float(), nullable=True),
    sa.Column('activation', sa.Float(), nullable=True),
    sa.Column('token_prob', sa.Float(), nullable=True),
    sa.Column('is_target_logit', sa.Boolean(), nullable=True),
    sa.Column('extra', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('graph_id', 'idx', name=op.f('pk_graph_nodes')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('graph_nodes', schema=None) as batch_op:
        batch_op.create_index('ix_graph_nodes_feature', ['feature_id', 'graph_id'], unique=False)

    op.create_table('graphs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('store', sa.String(length=16), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('prompt_tokens', sa.JSON(), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('scan', sa.String(length=300), nullable=True),
    sa.Column('transcoder_set', sa.String(length=200), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('family', sa.String(length=200), nullable=True),
    sa.Column('n_nodes', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('n_links', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('n_features', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('qparams', sa.JSON(), nullable=False),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ready_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_graphs'))
    )
    with op.batch_alter_table('graphs', schema=None) as batch_op:
        batch_op.create_index('ix_graphs_family', ['family'], unique=False)
        batch_op.create_index('ix_graphs_language', ['language'], unique=False)
        batch_op.create_index('ix_graphs_live_version', ['slug', 'content_hash'], unique=True, sqlite_where=sa.text("status IN ('loading', 'ready')"), postgresql_where=sa.text("status IN ('loading', 'ready')"))
        batch_op.create_index('ix_graphs_status', ['status'], unique=False)
        batch_op.create_index('ix_graphs_visible_slug', ['slug'], unique=True, sqlite_where=sa.text("status = 'ready'"), postgresql_where=sa.text("status = 'ready'"))

    op.create_table('descriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('feature_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=100), server_default=sa.text("('')"), nullable=False),
    sa.Column('author', sa.String(length=200), server_default=sa.text("('')"), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('text_hash', sa.String(length=64), nullable=False),
    sa.Column('graph_id', sa.Integer(), nullable=True),
    sa.Column('scores', sa.JSON(), nullable=True),
    sa.Column('origin', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['feature_id'], ['features.id'], name=op.f('fk_descriptions_feature_id_features')),
    sa.ForeignKeyConstraint(['graph_id'], ['graphs.id'], name=op.f('fk_descriptions_graph_id_graphs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_descriptions')),
    sa.UniqueConstraint('feature_id', 'source', 'kind', 'author', 'text_hash', 'graph_id', name=op.f('uq_descriptions_feature_id_source_kind_author_text_hash_graph_id'))
    )
    with op.batch_alter_table('descriptions', schema=None) as batch_op:
        batch_op.create_index('ix_descriptions_feature', ['feature_id'], unique=False)
        batch_op.create_index('ix_descriptions_graph', ['graph_id'], unique=False)

    op.create_table('feature_details',
    sa.Column('feature_id', sa.Integer(), nullable=False),
    sa.Column('examples_quantiles', sa.JSON(), nullable=True),
    sa.Column('top_logits', sa.JSON(), nullable=True),
    sa.Column('bottom_logits', sa.JSON(), nullable=True),
    sa.Column('act_min', sa.Float(), nullable=True),
    sa.Column('act_max', sa.Float(), nullable=True),
    sa.Column('activation_frequency', sa.Float(), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.Column('origin', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['feature_id'], ['features.id'], name=op.f('fk_feature_details_feature_id_features')),
    sa.PrimaryKeyConstraint('feature_id', name=op.f('pk_feature_details'))
    )
    op.create_table('graph_tags',
    sa.Column('graph_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['graph_id'], ['graphs.id'], name=op.f('fk_graph_tags_graph_id_graphs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('graph_id', 'tag', name=op.f('pk_graph_tags'))
    )
    with op.batch_alter_table('graph_tags', schema=None) as batch_op:
        batch_op.create_index('ix_graph_tags_tag', ['tag'], unique=False)

    op.create_table('labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('feature_id', sa.Integer(), nullable=False),
    sa.Column('graph_slug', sa.String(length=300), nullable=True),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['feature_id'], ['features.id'], name=op.f('fk_labels_feature_id_features')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_labels')),
    sa.UniqueConstraint('feature_id', 'author', 'graph_slug', 'text', name=op.f('uq_labels_feature_id_author_graph_slug_text'))
    )
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.create_index('ix_labels_feature', ['feature_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_index('ix_labels_feature')

    op.drop_table('labels')
    with op.batch_alter_table('graph_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_graph_tags_tag')

    op.drop_table('graph_tags')
    op.drop_table('feature_details')
    with op.batch_alter_table('descriptions', schema=None) as batch_op:
        batch_op.drop_index('ix_descriptions_graph')
        batch_op.drop_index('ix_descriptions_feature')

    op.drop_table('descriptions')
    with op.batch_alter_table('graphs', schema=None) as batch_op:
        batch_op.drop_index('ix_graphs_visible_slug', sqlite_where=sa.text("status = 'ready'"), postgresql_where=sa.text("status = 'ready'"))
        batch_op.drop_index('ix_graphs_status')
        batch_op.drop_index('ix_graphs_live_version', sqlite_where=sa.text("status IN ('loading', 'ready')"), postgresql_where=sa.text("status IN ('loading', 'ready')"))
        batch_op.drop_index('ix_graphs_language')
        batch_op.drop_index('ix_graphs_family')

    op.drop_table('graphs')
    with op.batch_alter_table('graph_nodes', schema=None) as batch_op:
        batch_op.drop_index('ix_graph_nodes_feature')

    op.drop_table('graph_nodes')
    op.drop_table('graph_links')
    op.drop_table('graph_link_extra')
    op.drop_table('features')
