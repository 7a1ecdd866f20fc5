"""each node's input total: graph_nodes.input_total

A link's share is its |weight| over the sum of |weight| of every link into its target. Summing a
node's links at query time took seconds for nodes with thousands of targets on big graphs, so
the total is kept with the node, written at ingest. Existing rows get theirs from graph_links
here, in one UPDATE (0.0 for a node without links into it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('graph_nodes', sa.Column('input_total', sa.Float(), nullable=True))
    nodes = sa.table('graph_nodes', sa.column('graph_id'), sa.column('idx'), sa.column('input_total'))
    links = sa.table('graph_links', sa.column('graph_id'), sa.column('tgt'), sa.column('weight'))
    total = (
        sa.select(sa.func.coalesce(sa.func.sum(sa.func.abs(links.c.weight)), 0.0))
        .where(links.c.graph_id == nodes.c.graph_id, links.c.tgt == nodes.c.idx)
        .scalar_subquery()
    )
    op.execute(nodes.update().values(input_total=total))


def downgrade() -> None:
    op.drop_column('graph_nodes', 'input_total')
