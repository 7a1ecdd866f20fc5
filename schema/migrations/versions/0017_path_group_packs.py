"""path groups packed per (graph, start position), with where their middle features sit: path_group_packs

A two-hop question over 10,000 graphs read 326,000 rows of path_groups, then the best paths of
the chosen groups from it again, then where each candidate middle feature sits from graph_nodes
(0.29 s, 0.15 s and 0.29 s). Packed, one row per (graph, start position) holds that position's
groups as a little-endian array (kb.aggregates.paths.PACKED_GROUP) and the positions of their
middle features (PACKED_POSITION): the question reads one row per graph. The rows of path_groups
become packs here; the positions come from graph_nodes, so for graphs kept in another store the
groups are marked stale, as 0013 does, until ``circuitkb aggregates rebuild`` reads them.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 02:30:00.000000
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from alembic import op


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

# the packed formats as this revision wrote them (kb.aggregates.paths reads them)
_GROUP = np.dtype([
    ("fid", "<i8"), ("n_paths", "<i8"), ("best", "<f8"), ("second", "<f8"), ("src", "<i8"), ("mid", "<i8"),
    ("tgt", "<i8"), ("w0", "<f8"), ("w1", "<f8"), ("mid_total", "<f8"), ("tgt_total", "<f8"),
])  # fmt: skip
_POSITION = np.dtype([("fid", "<i8"), ("ctx", "<i8")])
# path_groups' columns after ctx_idx, in the order of _GROUP's fields
_COLUMNS = ("feature_id", "n_paths", "best_score", "second_score", "best_src", "best_mid", "best_tgt", "best_w0", "best_w1", "mid_total", "tgt_total")
_ROW = ", ".join(("ctx_idx", *_COLUMNS))
_PACK = sa.text("INSERT INTO path_group_packs (graph_id, ctx_idx, groups, positions) VALUES (:graph_id, :ctx_idx, :groups, :positions)")


def upgrade() -> None:
    op.create_table('path_group_packs',
    sa.Column('graph_id', sa.Integer(), nullable=False),
    sa.Column('ctx_idx', sa.Integer(), nullable=False),
    sa.Column('groups', sa.LargeBinary(), nullable=False),
    sa.Column('positions', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('graph_id', 'ctx_idx', name=op.f('pk_path_group_packs'))
    )
    conn = op.get_bind()
    if not conn.execute(sa.text("SELECT count(*) FROM kb_meta WHERE key IN ('aggregates_stale', 'path_groups_stale')")).scalar_one():
        _pack(conn)
    op.drop_table('path_groups')


def _pack(conn: sa.Connection) -> None:
    """The packs of the ready graphs whose nodes are in this database; stale if some are not."""
    gids = conn.execute(sa.text("SELECT id FROM graphs WHERE status = 'ready' AND store = 'embedded' ORDER BY id")).scalars().all()
    for gid in gids:
        rows = conn.execute(sa.text(f"SELECT {_ROW} FROM path_groups WHERE graph_id = :gid ORDER BY ctx_idx, feature_id"), {"gid": gid}).all()
        if not rows:
            continue
        table = np.array([tuple(np.nan if v is None else v for v in row[1:]) for row in rows], dtype=_GROUP)
        ctx = np.array([row[0] for row in rows], dtype=np.int64)
        nodes = np.array(conn.execute(sa.text("SELECT feature_id, ctx_idx FROM graph_nodes WHERE graph_id = :gid AND feature_id IS NOT NULL"), {"gid": gid}).all(), dtype=np.int64).reshape(-1, 2)
        at = np.unique((nodes[:, 0] << 32) | nodes[:, 1])
        at_fid, at_ctx = at >> 32, at & 0xFFFFFFFF
        packs = []
        for c in np.unique(ctx).tolist():
            groups = table[ctx == c]
            here = np.isin(at_fid, groups["fid"])
            positions = np.empty(int(here.sum()), dtype=_POSITION)
            positions["fid"], positions["ctx"] = at_fid[here], at_ctx[here]
            packs.append({"graph_id": gid, "ctx_idx": c, "groups": groups.tobytes(), "positions": positions.tobytes()})
        conn.execute(_PACK, packs)
    elsewhere = conn.execute(sa.text("SELECT count(*) FROM graphs WHERE status = 'ready' AND store != 'embedded'")).scalar_one()
    if elsewhere:
        conn.execute(
            sa.text("INSERT INTO kb_meta (key, value) VALUES ('path_groups_stale', :reason)"),
            {"reason": f"the path groups of {elsewhere} graphs in another store are not packed yet; `circuitkb aggregates rebuild` reads them"},
        )


def downgrade() -> None:
    op.create_table('path_groups',
    sa.Column('graph_id', sa.Integer(), nullable=False),
    sa.Column('ctx_idx', sa.Integer(), nullable=False),
    sa.Column('feature_id', sa.Integer(), nullable=False),
    sa.Column('n_paths', sa.Integer(), nullable=False),
    sa.Column('best_score', sa.Float(), nullable=False),
    sa.Column('second_score', sa.Float(), nullable=True),
    sa.Column('best_src', sa.Integer(), nullable=True),
    sa.Column('best_mid', sa.Integer(), nullable=True),
    sa.Column('best_tgt', sa.Integer(), nullable=True),
    sa.Column('best_w0', sa.Float(), nullable=True),
    sa.Column('best_w1', sa.Float(), nullable=True),
    sa.Column('mid_total', sa.Float(), nullable=True),
    sa.Column('tgt_total', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('graph_id', 'ctx_idx', 'feature_id', name=op.f('pk_path_groups')),
    sqlite_with_rowid=False
    )
    conn = op.get_bind()
    insert = sa.text(f"INSERT INTO path_groups (graph_id, {_ROW}) VALUES (:graph_id, :ctx_idx, {', '.join(':' + c for c in _COLUMNS)})")
    for gid, ctx, groups in conn.execute(sa.text("SELECT graph_id, ctx_idx, groups FROM path_group_packs ORDER BY graph_id, ctx_idx")).all():
        table = np.frombuffer(bytes(groups), dtype=_GROUP)
        rows = []
        for values in table.tolist():
            row = dict(zip(_COLUMNS, values), graph_id=gid, ctx_idx=ctx)
            row["second_score"] = None if row["second_score"] != row["second_score"] else row["second_score"]
            rows.append(row)
        if rows:
            conn.execute(insert, rows)
    op.drop_table('path_group_packs')
