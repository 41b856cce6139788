"""agent heartbeat

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

``agents.last_seen_at``: the last heartbeat of an agent's websockets, from which the
presence sweeper turns online agents whose sockets went silent away.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('last_seen_at')
