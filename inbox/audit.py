"""The append-only audit log. ``audit`` is called by action functions inside their
transaction, so an audited change and its record commit or roll back together."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inbox.models import AuditEntry
from inbox.models.base import utcnow


async def audit(
    session: AsyncSession,
    actor_id: int | None,
    action: str,
    entity_type: str,
    entity_id: int | str,
    changes: dict[str, Any],
) -> None:
    session.add(
        AuditEntry(
            at=utcnow(),
            actor_type="agent" if actor_id is not None else "system",
            actor_id=actor_id,
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id),
            changes=changes,
        )
    )
