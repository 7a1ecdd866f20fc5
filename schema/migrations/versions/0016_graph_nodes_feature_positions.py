"""the feature index of graph_nodes holds each node's position: ix_graph_nodes_feature_ctx

A two-hop question asks where each candidate middle feature sits in its graph (tens of thousands
of (graph, feature) pairs over 10,000 graphs): found by the feature index, each node then needed a
second seek into the table for its position. With ctx_idx in the index, the index answers alone.
It starts with (feature_id, graph_id), so it replaces ix_graph_nodes_feature.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 21:50:00.000000
"""

from __future__ import annotations

from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_graph_nodes_feature_ctx', 'graph_nodes', ['feature_id', 'graph_id', 'ctx_idx'], unique=False)
    op.drop_index('ix_graph_nodes_feature', table_name='graph_nodes')


def downgrade() -> None:
    op.create_index('ix_graph_nodes_feature', 'graph_nodes', ['feature_id', 'graph_id'], unique=False)
    op.drop_index('ix_graph_nodes_feature_ctx', table_name='graph_nodes')
