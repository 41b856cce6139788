"""chat offers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

``chat_offers``: a chat offered to an agent who has not accepted it yet (routing with an
accept timeout).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'chat_offers',
        sa.Column('conversation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  nullable=False),
        sa.Column('agent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  nullable=False),
        sa.Column('offered_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['agent_id'], ['agents.id'],
                                name=op.f('fk_chat_offers_agent_id_agents')),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                                name=op.f('fk_chat_offers_conversation_id_conversations')),
        sa.PrimaryKeyConstraint('conversation_id', name=op.f('pk_chat_offers')),
    )
    with op.batch_alter_table('chat_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_offers_agent_id'), ['agent_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('chat_offers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_offers_agent_id'))
    op.drop_table('chat_offers')
