"""aggregates over the visible graphs: per-graph feature values and feature edges, their totals

The tables are filled here from what the SQL database already holds: the nodes and the packed
feature edges of the graphs of the embedded store. Graphs kept in another store (Neo4j), and
embedded graphs stored before their feature edges were kept, cannot be read from here: then the
aggregates are marked stale (kb_meta ``aggregates_stale``), the questions keep their exact
paths over the graphs, and ``circuitkb aggregates rebuild`` fills them from the graph store.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_EDGE_ROWS = 50_000


def upgrade() -> None:
    op.create_table('feature_graphs',
    sa.Column('feature_id', sa.Integer(), nullable=False),
    sa.Column('graph_id', sa.Integer(), nullable=False),
    sa.Column('activation', sa.Float(), nullable=True),
    sa.Column('influence', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('feature_id', 'graph_id', name=op.f('pk_feature_graphs')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('feature_graphs', schema=None) as batch_op:
        batch_op.create_index('ix_feature_graphs_graph_id_feature_id', ['graph_id', 'feature_id'], unique=False)
        batch_op.create_index('ix_feature_graphs_feature_id_activation', ['feature_id', 'activation'], unique=False)
        batch_op.create_index('ix_feature_graphs_feature_id_influence', ['feature_id', 'influence'], unique=False)

    op.create_table('feature_edge_graphs',
    sa.Column('src', sa.Integer(), nullable=False),
    sa.Column('tgt', sa.Integer(), nullable=False),
    sa.Column('graph_id', sa.Integer(), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('n_links', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('src', 'tgt', 'graph_id', name=op.f('pk_feature_edge_graphs')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('feature_edge_graphs', schema=None) as batch_op:
        batch_op.create_index('ix_feature_edge_graphs_graph_id_src_tgt', ['graph_id', 'src', 'tgt'], unique=False)

    op.create_table('feature_totals',
    sa.Column('feature_id', sa.Integer(), nullable=False),
    sa.Column('n_graphs', sa.Integer(), nullable=False),
    sa.Column('activation_n', sa.Integer(), nullable=False),
    sa.Column('activation_sum', sa.Float(), nullable=True),
    sa.Column('activation_min', sa.Float(), nullable=True),
    sa.Column('activation_max', sa.Float(), nullable=True),
    sa.Column('influence_n', sa.Integer(), nullable=False),
    sa.Column('influence_sum', sa.Float(), nullable=True),
    sa.Column('influence_min', sa.Float(), nullable=True),
    sa.Column('influence_max', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('feature_id', name=op.f('pk_feature_totals')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('feature_totals', schema=None) as batch_op:
        batch_op.create_index('ix_feature_totals_n_graphs', ['n_graphs'], unique=False)

    op.create_table('feature_edge_totals',
    sa.Column('src', sa.Integer(), nullable=False),
    sa.Column('tgt', sa.Integer(), nullable=False),
    sa.Column('n_graphs', sa.Integer(), nullable=False),
    sa.Column('weight_sum', sa.Float(), nullable=False),
    sa.Column('abs_sum', sa.Float(), nullable=False),
    sa.Column('weight_min', sa.Float(), nullable=False),
    sa.Column('weight_max', sa.Float(), nullable=False),
    sa.Column('n_links', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('src', 'tgt', name=op.f('pk_feature_edge_totals')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('feature_edge_totals', schema=None) as batch_op:
        batch_op.create_index('ix_feature_edge_totals_n_graphs', ['n_graphs'], unique=False)
        batch_op.create_index('ix_feature_edge_totals_tgt_src', ['tgt', 'src'], unique=False)

    op.create_table('feature_edge_histogram',
    sa.Column('n_graphs', sa.Integer(), nullable=False),
    sa.Column('n_edges', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('n_graphs', name=op.f('pk_feature_edge_histogram'))
    )

    _fill(op.get_bind())


def _fill(conn: sa.Connection) -> None:
    """The aggregates of the ready graphs whose data is in this database; stale if some are not."""
    ready = conn.execute(sa.text("SELECT count(*) FROM graphs WHERE status = 'ready'")).scalar_one()
    if not ready:
        return
    elsewhere = conn.execute(sa.text("SELECT count(*) FROM graphs WHERE status = 'ready' AND store != 'embedded'")).scalar_one()
    without_edges = conn.execute(sa.text(
        "SELECT count(*) FROM graphs g WHERE g.status = 'ready' AND g.store = 'embedded' "
        "AND NOT EXISTS (SELECT 1 FROM graph_feature_edges e WHERE e.graph_id = g.id)"
    )).scalar_one()
    conn.execute(sa.text(
        "INSERT INTO feature_graphs (feature_id, graph_id, activation, influence) "
        "SELECT n.feature_id, n.graph_id, max(n.activation), min(n.influence) "
        "FROM graph_nodes n JOIN graphs g ON g.id = n.graph_id "
        "WHERE g.status = 'ready' AND g.store = 'embedded' AND n.feature_id IS NOT NULL "
        "GROUP BY n.feature_id, n.graph_id"
    ))
    _fill_edges(conn)
    conn.execute(sa.text(
        "INSERT INTO feature_totals (feature_id, n_graphs, activation_n, activation_sum, activation_min, activation_max, "
        "influence_n, influence_sum, influence_min, influence_max) "
        "SELECT feature_id, count(*), count(activation), sum(activation), min(activation), max(activation), "
        "count(influence), sum(influence), min(influence), max(influence) FROM feature_graphs GROUP BY feature_id"
    ))
    conn.execute(sa.text(
        "INSERT INTO feature_edge_totals (src, tgt, n_graphs, weight_sum, abs_sum, weight_min, weight_max, n_links) "
        "SELECT src, tgt, count(*), sum(weight), sum(abs(weight)), min(weight), max(weight), sum(n_links) "
        "FROM feature_edge_graphs GROUP BY src, tgt"
    ))
    conn.execute(sa.text(
        "INSERT INTO feature_edge_histogram (n_graphs, n_edges) SELECT n_graphs, count(*) FROM feature_edge_totals GROUP BY n_graphs"
    ))
    if elsewhere or without_edges:
        reason = (
            f"{elsewhere + without_edges} of the {ready} graphs stored before the aggregates existed are not in the "
            "SQL database (another graph store, or no stored feature edges)"
        )
        conn.execute(sa.text("INSERT INTO kb_meta (key, value) VALUES ('aggregates_stale', :reason)"), {"reason": reason})


def _fill_edges(conn: sa.Connection) -> None:
    """feature_edge_graphs from the packed arrays of graph_feature_edges (little-endian int32,
    int32, float64, int32), for the ready graphs of the embedded store."""
    parts = conn.execute(sa.text(
        "SELECT e.graph_id, e.src, e.tgt, e.weight, e.n_links FROM graph_feature_edges e JOIN graphs g ON g.id = e.graph_id "
        "WHERE g.status = 'ready' AND g.store = 'embedded' ORDER BY e.graph_id, e.part"
    ))
    insert = sa.text("INSERT INTO feature_edge_graphs (src, tgt, graph_id, weight, n_links) VALUES (:src, :tgt, :graph_id, :weight, :n_links)")
    rows: list[dict[str, object]] = []
    for gid, src, tgt, weight, n_links in parts:
        columns = (
            np.frombuffer(bytes(src), dtype="<i4").tolist(),
            np.frombuffer(bytes(tgt), dtype="<i4").tolist(),
            np.frombuffer(bytes(weight), dtype="<f8").tolist(),
            np.frombuffer(bytes(n_links), dtype="<i4").tolist(),
        )
        rows += [{"src": s, "tgt": t, "graph_id": gid, "weight": w, "n_links": n} for s, t, w, n in zip(*columns)]
        if len(rows) >= _EDGE_ROWS:
            conn.execute(insert, rows)
            rows = []
    if rows:
        conn.execute(insert, rows)


def downgrade() -> None:
    op.execute("DELETE FROM kb_meta WHERE key = 'aggregates_stale'")
    op.drop_table('feature_edge_histogram')
    with op.batch_alter_table('feature_edge_totals', schema=None) as batch_op:
        batch_op.drop_index('ix_feature_edge_totals_tgt_src')
        batch_op.drop_index('ix_feature_edge_totals_n_graphs')
    op.drop_table('feature_edge_totals')
    with op.batch_alter_table('feature_totals', schema=None) as batch_op:
        batch_op.drop_index('ix_feature_totals_n_graphs')
    op.drop_table('feature_totals')
    with op.batch_alter_table('feature_edge_graphs', schema=None) as batch_op:
        batch_op.drop_index('ix_feature_edge_graphs_graph_id_src_tgt')
    op.drop_table('feature_edge_graphs')
    with op.batch_alter_table('feature_graphs', schema=None) as batch_op:
        batch_op.drop_index('ix_feature_graphs_feature_id_influence')
        batch_op.drop_index('ix_feature_graphs_feature_id_activation')
        batch_op.drop_index('ix_feature_graphs_graph_id_feature_id')
    op.drop_table('feature_graphs')
