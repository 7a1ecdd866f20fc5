"""QK tracing of Lorsa features: the graph_qk table

Graphs of Neuronpedia's CRM engine carry, on each Lorsa (attention) feature node, the features
that drive its query and key; one row per contributor (or query/key pair), keyed by the graph and
the node, with the contributors' feature ids for cross-graph questions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 03:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'graph_qk',
        sa.Column('graph_id', sa.Integer(), nullable=False),
        sa.Column('target_idx', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(length=8), nullable=False),
        sa.Column('rank', sa.Integer(), nullable=False),
        sa.Column('target_node_id', sa.String(length=200), nullable=False),
        sa.Column('target_feature_id', sa.Integer(), nullable=True),
        sa.Column('q_node_id', sa.String(length=200), nullable=True),
        sa.Column('q_feature_id', sa.Integer(), nullable=True),
        sa.Column('k_node_id', sa.String(length=200), nullable=True),
        sa.Column('k_feature_id', sa.Integer(), nullable=True),
        sa.Column('weight', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['graph_id'], ['graphs.id'], name=op.f('fk_graph_qk_graph_id_graphs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('graph_id', 'target_idx', 'role', 'rank', name=op.f('pk_graph_qk')),
    )
    with op.batch_alter_table('graph_qk', schema=None) as batch_op:
        batch_op.create_index('ix_graph_qk_target_feature_id_graph_id', ['target_feature_id', 'graph_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('graph_qk', schema=None) as batch_op:
        batch_op.drop_index('ix_graph_qk_target_feature_id_graph_id')
    op.drop_table('graph_qk')
