"""graph_links keyed by source: primary key (graph_id, src, tgt, idx), one index by target

Before, graph_links had the primary key (graph_id, idx) and two indexes, (graph_id, src, tgt) and
(graph_id, tgt, src): every link was written into three B-trees. Keyed by (graph_id, src, tgt, idx)
the table itself serves a node's outgoing links and the links between chosen nodes, and only the
index by target remains: two B-trees per link, and the store writes each graph's links in key
order so that the table's B-tree is appended to. A graph is read in file order by sorting on idx.

The links are copied into the new table. On SQLite, planner statistics are rewritten for the
new key and index (see 0003 and 0005), assuming big graphs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_OLD = "graph_links_before_0010"
_COLUMNS = "graph_id, src, tgt, idx, weight"


def upgrade() -> None:
    _rebuild(
        key=("graph_id", "src", "tgt", "idx"),
        old_indexes=("ix_graph_links_graph_id_src_tgt", "ix_graph_links_graph_id_tgt_src"),
        new_indexes={"ix_graph_links_graph_id_tgt_src": ["graph_id", "tgt", "src"]},
        statistics=(("graph_links", "4000000 100000 10 1 1"), ("ix_graph_links_graph_id_tgt_src", "4000000 100000 10 1")),
    )


def downgrade() -> None:
    _rebuild(
        key=("graph_id", "idx"),
        old_indexes=("ix_graph_links_graph_id_tgt_src",),
        new_indexes={"ix_graph_links_graph_id_src_tgt": ["graph_id", "src", "tgt"], "ix_graph_links_graph_id_tgt_src": ["graph_id", "tgt", "src"]},
        statistics=(
            ("graph_links", "4000000 100000 1"),
            ("ix_graph_links_graph_id_src_tgt", "4000000 100000 10 1"),
            ("ix_graph_links_graph_id_tgt_src", "4000000 100000 10 1"),
        ),
    )


def _rebuild(key: tuple[str, ...], old_indexes: tuple[str, ...], new_indexes: dict[str, list[str]], statistics: tuple[tuple[str, str], ...]) -> None:
    """Move the links into a new graph_links with primary key ``key`` and the given indexes."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in old_indexes:
        op.drop_index(name, table_name="graph_links")
    op.rename_table("graph_links", _OLD)
    if not sqlite:  # PostgreSQL names the key's index after the constraint: free the name
        op.execute(f"ALTER TABLE {_OLD} RENAME CONSTRAINT pk_graph_links TO pk_{_OLD}")
    op.create_table(
        "graph_links",
        sa.Column("graph_id", sa.Integer(), nullable=False),
        sa.Column("src", sa.Integer(), nullable=False),
        sa.Column("tgt", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_graph_links")),
        sqlite_with_rowid=False,
    )
    op.execute(f"INSERT INTO graph_links ({_COLUMNS}) SELECT {_COLUMNS} FROM {_OLD} ORDER BY {', '.join(key)}")
    op.drop_table(_OLD)
    for name, columns in new_indexes.items():
        op.create_index(name, "graph_links", columns, unique=False)
    if sqlite:
        op.execute("ANALYZE sqlite_schema")  # creates sqlite_stat1 if it is missing, analyses nothing
        op.execute("DELETE FROM sqlite_stat1 WHERE tbl = 'graph_links'")
        for index, stat in statistics:
            op.execute(sa.text("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('graph_links', :idx, :stat)").bindparams(idx=index, stat=stat))
        op.execute("ANALYZE sqlite_schema")  # reload the statistics in this connection
