"""link indexes carry both ends: (graph_id, src, tgt) and (graph_id, tgt, src)

The indexes of 0003 named one end only, so finding the links among a few hundred chosen nodes of
a big graph read every link of each of them from the table. With both ends in the index, SQLite
and PostgreSQL seek the pairs directly. SQLite planner statistics are rewritten for the new
indexes (see 0003), now assuming big graphs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 00:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# rows, rows per graph, rows per (graph, node), rows per (graph, node, other node). Rows per graph
# is set high on purpose: a graph may hold millions of links, and the planner must prefer seeking a
# few hundred nodes' links by index over reading the whole graph (on a small graph both are fast).
_LINK_STATISTICS = (
    ("graph_links", "4000000 100000 1"),
    ("ix_graph_links_graph_id_src_tgt", "4000000 100000 10 1"),
    ("ix_graph_links_graph_id_tgt_src", "4000000 100000 10 1"),
)


def upgrade() -> None:
    with op.batch_alter_table('graph_links', schema=None) as batch_op:
        batch_op.drop_index('ix_graph_links_graph_id_src')
        batch_op.drop_index('ix_graph_links_graph_id_tgt')
        batch_op.create_index('ix_graph_links_graph_id_src_tgt', ['graph_id', 'src', 'tgt'], unique=False)
        batch_op.create_index('ix_graph_links_graph_id_tgt_src', ['graph_id', 'tgt', 'src'], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_link_statistics(_LINK_STATISTICS)


def downgrade() -> None:
    with op.batch_alter_table('graph_links', schema=None) as batch_op:
        batch_op.drop_index('ix_graph_links_graph_id_tgt_src')
        batch_op.drop_index('ix_graph_links_graph_id_src_tgt')
        batch_op.create_index('ix_graph_links_graph_id_src', ['graph_id', 'src'], unique=False)
        batch_op.create_index('ix_graph_links_graph_id_tgt', ['graph_id', 'tgt'], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_link_statistics(
            (("graph_links", "4000000 4000 1"), ("ix_graph_links_graph_id_src", "4000000 4000 10"), ("ix_graph_links_graph_id_tgt", "4000000 4000 10"))
        )


def _sqlite_link_statistics(rows: tuple[tuple[str, str], ...]) -> None:
    op.execute("ANALYZE sqlite_schema")  # creates sqlite_stat1 if it is missing, analyses nothing
    op.execute("DELETE FROM sqlite_stat1 WHERE tbl = 'graph_links'")
    for index, stat in rows:
        op.execute(sa.text("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('graph_links', :idx, :stat)").bindparams(idx=index, stat=stat))
    op.execute("ANALYZE sqlite_schema")  # reload the statistics in this connection
