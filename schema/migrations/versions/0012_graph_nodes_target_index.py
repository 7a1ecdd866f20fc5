"""each graph's target logit by index: ix_graph_nodes_target

Chains (pattern and two-hop queries) end at the graph's target logit. Found by an index before
the chain's last link is read, that link is one seek by (graph, source, target) instead of a walk
over every link out of the last step's node, with a node lookup for each to test its target.

On SQLite the migration also writes the index's planner statistics (one node per graph): without
them SQLite reads a graph's nodes by the primary key to find its target (see 0003).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 13:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        'ix_graph_nodes_target',
        'graph_nodes',
        ['graph_id', 'idx'],
        unique=False,
        sqlite_where=sa.text('is_target_logit = 1'),
        postgresql_where=sa.text('is_target_logit = true'),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ANALYZE sqlite_schema")  # creates sqlite_stat1 if it is missing, analyses nothing
        op.execute("DELETE FROM sqlite_stat1 WHERE idx = 'ix_graph_nodes_target'")
        op.execute("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('graph_nodes', 'ix_graph_nodes_target', '100000 1 1')")
        op.execute("ANALYZE sqlite_schema")  # reload the statistics in this connection


def downgrade() -> None:
    op.drop_index('ix_graph_nodes_target', table_name='graph_nodes')
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DELETE FROM sqlite_stat1 WHERE idx = 'ix_graph_nodes_target'")
