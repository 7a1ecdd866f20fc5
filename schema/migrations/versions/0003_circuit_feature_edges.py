"""circuits: each graph's feature edges (packed arrays), link indexes by source and target

Graphs stored before this migration have no graph_feature_edges row; the circuit queries
compute theirs from graph_links when they meet them.

On SQLite the migration also writes planner statistics for graph_links (what ANALYZE would
find on a typical corpus: thousands of links per graph, a handful per node). Without any, SQLite
prefers scanning a graph's links by primary key over the (graph_id, src) and (graph_id, tgt)
indexes, and a node's links cost a scan of the whole graph. A later ANALYZE replaces them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 22:40:19.203543
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('graph_feature_edges',
    sa.Column('graph_id', sa.Integer(), nullable=False),
    sa.Column('part', sa.Integer(), nullable=False),
    sa.Column('n_edges', sa.Integer(), nullable=False),
    sa.Column('src', sa.LargeBinary(), nullable=False),
    sa.Column('tgt', sa.LargeBinary(), nullable=False),
    sa.Column('weight', sa.LargeBinary(), nullable=False),
    sa.Column('n_links', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('graph_id', 'part', name=op.f('pk_graph_feature_edges'))
    )
    with op.batch_alter_table('graph_links', schema=None) as batch_op:
        batch_op.create_index('ix_graph_links_graph_id_src', ['graph_id', 'src'], unique=False)
        batch_op.create_index('ix_graph_links_graph_id_tgt', ['graph_id', 'tgt'], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_link_statistics()


# rows, rows per graph, rows per (graph, node) -- see sqlite_stat1 in SQLite's documentation
_LINK_STATISTICS = (
    ("graph_links", "4000000 4000 1"),
    ("ix_graph_links_graph_id_src", "4000000 4000 10"),
    ("ix_graph_links_graph_id_tgt", "4000000 4000 10"),
)


def _sqlite_link_statistics() -> None:
    op.execute("ANALYZE sqlite_schema")  # creates sqlite_stat1 if it is missing, analyses nothing
    op.execute("DELETE FROM sqlite_stat1 WHERE tbl = 'graph_links'")
    for index, stat in _LINK_STATISTICS:
        op.execute(sa.text("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('graph_links', :idx, :stat)").bindparams(idx=index, stat=stat))
    op.execute("ANALYZE sqlite_schema")  # reload the statistics in this connection


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DELETE FROM sqlite_stat1 WHERE tbl = 'graph_links'")
    with op.batch_alter_table('graph_links', schema=None) as batch_op:
        batch_op.drop_index('ix_graph_links_graph_id_tgt')
        batch_op.drop_index('ix_graph_links_graph_id_src')

    op.drop_table('graph_feature_edges')
