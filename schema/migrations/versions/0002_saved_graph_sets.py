"""saved graph sets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 22:27:24.260593
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('graph_sets',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('slugs', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_graph_sets'))
    )


def downgrade() -> None:
    op.drop_table('graph_sets')
