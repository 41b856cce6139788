"""Who may see which conversation. One rule, used by list queries, single reads and the
event fan-out, so an agent never receives over the websocket what the API would hide.

Supervisors and admins see everything. An agent sees conversations assigned to them,
conversations of their teams, and conversations that belong to no team.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, true

from inbox.models import Conversation
from inbox.types import Role


@dataclass(frozen=True)
class Viewer:
    agent_id: int
    role: Role
    team_ids: frozenset[int]

    @property
    def sees_all(self) -> bool:
        return self.role.at_least(Role.SUPERVISOR)

    def can_see(self, team_id: int | None, assignee_id: int | None) -> bool:
        return (
            self.sees_all
            or assignee_id == self.agent_id
            or team_id is None
            or team_id in self.team_ids
        )

    def can_see_json(self, conversation: dict[str, Any]) -> bool:
        return self.can_see(conversation.get("team_id"), conversation.get("assignee_id"))


def visible(viewer: Viewer) -> ColumnElement[bool]:
    """``can_see`` as SQL.

    Written through ``coalesce`` on purpose: no planner then serves this OR from the team
    and assignee indexes. An agent sees a large share of all conversations, and gathering
    every visible row to sort it costs far more than walking the last-message index and
    filtering until a page is full (measured by ``python -m bench list``).
    """
    if viewer.sees_all:
        return true()
    no_team = 0  # ids start at 1
    return or_(
        func.coalesce(Conversation.team_id, no_team).in_([no_team, *sorted(viewer.team_ids)]),
        func.coalesce(Conversation.assignee_id, 0) == viewer.agent_id,
    )
