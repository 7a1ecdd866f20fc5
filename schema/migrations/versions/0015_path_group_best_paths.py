"""each path group's best path and next best score: path_groups.second_score, best_*

A two-hop question took each graph's best paths from the groups' best scores, then matched the
paths through the chosen middle features in the store again to find them (2-2.5 s of 5.6 s over
10,000 graphs). With each group's best path kept (its nodes, weights and input totals) and the
score of its next best path, a graph whose best paths are all group bests (no group's next best
reaches them) needs no match in the store. Filled here for the embedded store's graphs, ranked as
kb.aggregates.paths ranks them (by score, then the first link's and the last link's place in the
file); groups of graphs kept in another store are marked stale, as 0013 does, until
``circuitkb aggregates rebuild`` reads them.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_COLUMNS = (
    ('second_score', sa.Float()),
    ('best_src', sa.Integer()),
    ('best_mid', sa.Integer()),
    ('best_tgt', sa.Integer()),
    ('best_w0', sa.Float()),
    ('best_w1', sa.Float()),
    ('mid_total', sa.Float()),
    ('tgt_total', sa.Float()),
)
_SHARE = "CASE WHEN {node}.input_total > 0 THEN abs({link}.weight) / {node}.input_total ELSE 0.0 END"


def upgrade() -> None:
    for name, kind in _COLUMNS:
        op.add_column('path_groups', sa.Column(name, kind, nullable=True))
    conn = op.get_bind()
    if conn.execute(sa.text("SELECT count(*) FROM kb_meta WHERE key IN ('aggregates_stale', 'path_groups_stale')")).scalar_one():
        return  # a rebuild, already asked for, fills every column
    conn.execute(sa.text("DELETE FROM path_groups WHERE graph_id IN (SELECT id FROM graphs WHERE store = 'embedded')"))
    score = _SHARE.format(node="m", link="l0") + " * " + _SHARE.format(node="t", link="l1")
    group = "s.graph_id, s.ctx_idx, m.feature_id"
    conn.execute(sa.text(
        "INSERT INTO path_groups (graph_id, ctx_idx, feature_id, n_paths, best_score, second_score, "
        "best_src, best_mid, best_tgt, best_w0, best_w1, mid_total, tgt_total) "
        "SELECT graph_id, ctx_idx, feature_id, n, score, second, s_idx, m_idx, t_idx, w0, w1, m_total, t_total FROM ("
        f"SELECT s.graph_id AS graph_id, s.ctx_idx AS ctx_idx, m.feature_id AS feature_id, {score} AS score, "
        "s.idx AS s_idx, m.idx AS m_idx, t.idx AS t_idx, l0.weight AS w0, l1.weight AS w1, m.input_total AS m_total, t.input_total AS t_total, "
        f"row_number() OVER (PARTITION BY {group} ORDER BY {score} DESC, l0.idx, l1.idx) AS place, "
        f"count(*) OVER (PARTITION BY {group}) AS n, "
        f"lead({score}) OVER (PARTITION BY {group} ORDER BY {score} DESC, l0.idx, l1.idx) AS second "
        "FROM graphs g "
        "JOIN graph_nodes t ON t.graph_id = g.id AND t.is_target_logit "
        "JOIN graph_links l1 ON l1.graph_id = t.graph_id AND l1.tgt = t.idx "
        "JOIN graph_nodes m ON m.graph_id = l1.graph_id AND m.idx = l1.src AND m.kind = 'feature' "
        "JOIN graph_links l0 ON l0.graph_id = m.graph_id AND l0.tgt = m.idx "
        "JOIN graph_nodes s ON s.graph_id = l0.graph_id AND s.idx = l0.src AND s.kind IN ('feature', 'embedding') "
        "WHERE g.status = 'ready' AND g.store = 'embedded'"
        ") ranked WHERE place = 1"
    ))
    elsewhere = conn.execute(sa.text("SELECT count(*) FROM graphs WHERE status = 'ready' AND store != 'embedded'")).scalar_one()
    if elsewhere:
        conn.execute(
            sa.text("INSERT INTO kb_meta (key, value) VALUES ('path_groups_stale', :reason)"),
            {"reason": f"the best paths of {elsewhere} graphs in another store are not kept yet; `circuitkb aggregates rebuild` reads them"},
        )


def downgrade() -> None:
    with op.batch_alter_table('path_groups') as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
