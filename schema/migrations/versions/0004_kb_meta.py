"""kb meta

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 23:38:04.261973
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kb_meta',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_kb_meta'))
    )


def downgrade() -> None:
    op.drop_table('kb_meta')
