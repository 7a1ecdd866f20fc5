"""a feature's distinct texts from an index: ix_descriptions_feature_text

A clerp is stored once per graph that has the feature, so a feature's names were found by reading
all its rows (twenty per feature among 10,000 graphs) and grouping them by text. The index on
(feature_id, source, text_hash) groups them by hash without reading the rows; only the first row
of each distinct text is read. It starts with feature_id, so it replaces ix_descriptions_feature.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 17:00:00.000000
"""

from __future__ import annotations

from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_descriptions_feature_text', 'descriptions', ['feature_id', 'source', 'text_hash'], unique=False)
    op.drop_index('ix_descriptions_feature', table_name='descriptions')


def downgrade() -> None:
    op.create_index('ix_descriptions_feature', 'descriptions', ['feature_id'], unique=False)
    op.drop_index('ix_descriptions_feature_text', table_name='descriptions')
