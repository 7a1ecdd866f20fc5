"""each graph's two-step paths into its target logit, grouped: path_groups

Per visible graph, per (position of the path's start, feature of its middle node): how many
paths start (a feature or embedding node) -> middle (a feature node) -> target logit, and the best
score (see kb.aggregates.paths). Filled here from the nodes and links of the embedded store's
graphs, with the same score expression as the chain queries, so the best scores are theirs to
the last bit. Graphs kept in another store (Neo4j) cannot be read from here: then the groups are
marked stale (kb_meta ``path_groups_stale``), two-hop questions keep matching paths in the store,
and ``circuitkb aggregates rebuild`` fills them from the graph store.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 16:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_SHARE = "CASE WHEN {node}.input_total > 0 THEN abs({link}.weight) / {node}.input_total ELSE 0.0 END"


def upgrade() -> None:
    op.create_table('path_groups',
    sa.Column('graph_id', sa.Integer(), nullable=False),
    sa.Column('ctx_idx', sa.Integer(), nullable=False),
    sa.Column('feature_id', sa.Integer(), nullable=False),
    sa.Column('n_paths', sa.Integer(), nullable=False),
    sa.Column('best_score', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('graph_id', 'ctx_idx', 'feature_id', name=op.f('pk_path_groups')),
    sqlite_with_rowid=False
    )
    _fill(op.get_bind())


def _fill(conn: sa.Connection) -> None:
    """The groups of the ready graphs whose nodes and links are in this database; stale if some are not."""
    elsewhere = conn.execute(sa.text("SELECT count(*) FROM graphs WHERE status = 'ready' AND store != 'embedded'")).scalar_one()
    score = _SHARE.format(node="m", link="l0") + " * " + _SHARE.format(node="t", link="l1")
    conn.execute(sa.text(
        "INSERT INTO path_groups (graph_id, ctx_idx, feature_id, n_paths, best_score) "
        f"SELECT s.graph_id, s.ctx_idx, m.feature_id, count(*), max({score}) "
        "FROM graphs g "
        "JOIN graph_nodes t ON t.graph_id = g.id AND t.is_target_logit "
        "JOIN graph_links l1 ON l1.graph_id = t.graph_id AND l1.tgt = t.idx "
        "JOIN graph_nodes m ON m.graph_id = l1.graph_id AND m.idx = l1.src AND m.kind = 'feature' "
        "JOIN graph_links l0 ON l0.graph_id = m.graph_id AND l0.tgt = m.idx "
        "JOIN graph_nodes s ON s.graph_id = l0.graph_id AND s.idx = l0.src AND s.kind IN ('feature', 'embedding') "
        "WHERE g.status = 'ready' AND g.store = 'embedded' "
        "GROUP BY s.graph_id, s.ctx_idx, m.feature_id"
    ))
    if elsewhere:
        conn.execute(
            sa.text("INSERT INTO kb_meta (key, value) VALUES ('path_groups_stale', :reason)"),
            {"reason": f"{elsewhere} graphs are in another store; `circuitkb aggregates rebuild` reads their paths"},
        )


def downgrade() -> None:
    op.drop_table('path_groups')
    op.execute("DELETE FROM kb_meta WHERE key = 'path_groups_stale'")
