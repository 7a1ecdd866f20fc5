"""each path group keeps its best three paths and the score of the next: path_group_packs.more

A two-hop question took each group's best path from its pack, and matched in the store every
path of a group whose next best could be among the best of its graph: at 10,000 graphs, 2,739
groups of 1,902 graphs, 0.2-0.4 s. Keeping each group's next two paths as well, with the score
of the best one it does not keep, leaves 95 of those groups to the store.

The new column is empty (NULL) for the packs already stored: they answer as before (a group
keeps its best path alone) until ``circuitkb aggregates rebuild`` recomputes them from the
graphs' links, which this migration does not read.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 04:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('path_group_packs') as batch:
        batch.add_column(sa.Column('more', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('path_group_packs') as batch:
        batch.drop_column('more')
