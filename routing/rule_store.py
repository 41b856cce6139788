"""Routing rules between the store and ``routing.rules``: checking a rule before it is
saved, reading the rule set back, gathering the facts rules look at, turning a
conversation and the rules' outcome into what the router queues, and the dry-run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.actions.rules import list_rules
from inbox.models import (
    AuditEntry,
    Contact,
    Conversation,
    ConversationSkill,
    ConversationTag,
    Message,
    Team,
)
from inbox.types import Channel, Direction, Priority
from routing.core import SkillNeed, Waiting
from routing.rule_conditions import Facts, RuleError
from routing.rules import Outcome, Rule, evaluate, parse_rule, rule_to_json

DRY_RUN_CONVERSATIONS = 500
DRY_RUN_SHOWN = 100
SUBJECT_CHUNK = 2000


def check_definition(data: object) -> dict[str, Any]:
    """The canonical JSON of a rule, or ``RuleError`` naming what is wrong."""
    return rule_to_json(parse_rule(data))


async def current_rules(session: AsyncSession) -> tuple[Rule, ...]:
    """The stored rule set in order (each was checked when saved)."""
    return tuple(parse_rule(stored.definition) for stored in await list_rules(session))


@dataclass(frozen=True)
class Subject:
    """A conversation as routing sees it: the facts for rules and its own settings."""

    id: int
    facts: Facts
    priority: Priority
    skills: tuple[tuple[str, int], ...]
    created_at: datetime
    previous_agent: int | None = None  # who last held another conversation of the contact
    team: str | None = None  # the name of the conversation's team
    declined_by: frozenset[int] = frozenset()  # agents who turned down an offer of it


async def load_subjects(session: AsyncSession, ids: Iterable[int]) -> dict[int, Subject]:
    """Facts for rules about these conversations, in a few set-wise queries per chunk of
    ``SUBJECT_CHUNK`` (both databases bound the parameters of one statement)."""
    wanted = sorted(set(ids))
    subjects: dict[int, Subject] = {}
    for start in range(0, len(wanted), SUBJECT_CHUNK):
        subjects.update(await _subjects(session, wanted[start : start + SUBJECT_CHUNK]))
    return subjects


async def _subjects(session: AsyncSession, wanted: list[int]) -> dict[int, Subject]:
    rows = (await session.execute(
        select(
            Conversation.id, Conversation.channel, Conversation.subject, Conversation.priority,
            Conversation.created_at, Contact.email, Contact.name, Contact.id, Team.name,
        )
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(Team, Team.id == Conversation.team_id)
        .where(Conversation.id.in_(wanted))
    )).all()
    tags: dict[int, set[str]] = {}
    for conversation_id, tag in await session.execute(
        select(ConversationTag.conversation_id, ConversationTag.tag)
        .where(ConversationTag.conversation_id.in_(wanted))
    ):
        tags.setdefault(conversation_id, set()).add(tag)
    skills: dict[int, list[tuple[str, int]]] = {}
    for conversation_id, skill, level in await session.execute(
        select(ConversationSkill.conversation_id, ConversationSkill.skill,
               ConversationSkill.level)
        .where(ConversationSkill.conversation_id.in_(wanted))
    ):
        skills.setdefault(conversation_id, []).append((skill, level))
    first = (
        select(func.min(Message.id))
        .where(Message.conversation_id.in_(wanted), Message.direction == Direction.INBOUND.value)
        .group_by(Message.conversation_id)
    )
    bodies = dict((await session.execute(
        select(Message.conversation_id, Message.body_text).where(Message.id.in_(first))
    )).all())
    previous = await _previous_agents(session, {row[7] for row in rows}, wanted)
    declined = await _declines(session, wanted)
    subjects = {}
    for (conversation_id, channel, subject, priority, created_at, email, name, contact,
         team) in rows:
        facts = Facts(
            channel=Channel(channel), source=None, subject=subject,
            body=bodies.get(conversation_id, ""), contact_email=email, contact_name=name,
            contact_tags=frozenset(), tags=frozenset(tags.get(conversation_id, ())),
            language=None, received_at=created_at,
        )
        subjects[conversation_id] = Subject(
            conversation_id, facts, Priority(priority),
            tuple(sorted(skills.get(conversation_id, ()))), created_at, previous.get(contact),
            team, frozenset(declined.get(conversation_id, ())),
        )
    return subjects


async def _declines(session: AsyncSession, ids: list[int]) -> dict[int, set[int]]:
    """Per conversation, the agents who declined an offer of it (from the audit log)."""
    declined: dict[int, set[int]] = {}
    rows = await session.execute(
        select(AuditEntry.entity_id, AuditEntry.changes).where(
            AuditEntry.entity_type == "conversation",
            AuditEntry.action == "conversation.offer_end",
            AuditEntry.entity_id.in_([str(i) for i in ids]),
        )
    )
    for entity_id, changes in rows:
        if changes.get("reason") == "declined":
            declined.setdefault(int(entity_id), set()).add(int(changes["agent_id"]))
    return declined


async def _previous_agents(
    session: AsyncSession, contacts: set[int], excluded: list[int]
) -> dict[int, int]:
    """Per contact, the agent of its latest other conversation that had one."""
    if not contacts:
        return {}
    rows = await session.execute(
        select(Conversation.contact_id, Conversation.assignee_id)
        .where(
            Conversation.contact_id.in_(sorted(contacts)),
            Conversation.assignee_id.is_not(None),
            Conversation.id.not_in(excluded),
        )
        .order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
    )
    previous: dict[int, int] = {}
    for contact_id, assignee_id in rows:
        if assignee_id is not None:
            previous.setdefault(contact_id, assignee_id)
    return previous


def waiting_for(subject: Subject, outcome: Outcome | None, sticky_s: float = 0.0) -> Waiting:
    """What the router queues: the conversation's own skills and priority, with the
    rules' outcome on top (a rule's skill level and relaxation win for that skill; a
    rule's priority replaces the conversation's; its SLA sets the deadline); and, for
    ``sticky_s`` after it starts waiting, the contact's previous agent preferred."""
    needs = {skill: SkillNeed(skill, level) for skill, level in subject.skills}
    priority = subject.priority
    deadline = None
    since = subject.created_at.timestamp()
    if outcome is not None:
        for need in outcome.needs:
            own = needs.get(need.skill)
            needs[need.skill] = (
                need if own is None else SkillNeed(need.skill, max(own.level, need.level),
                                                   need.relax_after_s)
            )
        priority = outcome.priority or priority
        if outcome.first_response_s is not None:
            deadline = since + outcome.first_response_s
    return Waiting(
        id=subject.id,
        channel=subject.facts.channel,
        needs=tuple(needs[skill] for skill in sorted(needs)),
        priority=priority.rank,
        waiting_since=since,
        deadline=deadline,
        sticky_agent=subject.previous_agent if sticky_s > 0 else None,
        sticky_until=since + sticky_s if sticky_s > 0 else None,
        declined_by=subject.declined_by,
    )


@dataclass(frozen=True)
class Marking:
    """What the rules' outcome changes on the conversation itself (None: nothing)."""

    priority: Priority | None
    team: str | None
    tags: tuple[str, ...] | None  # the whole new tag list


def marking(subject: Subject, outcome: Outcome | None) -> Marking | None:
    """The priority, team and tags the rules set that the conversation does not have yet."""
    if outcome is None:
        return None
    priority = outcome.priority if outcome.priority not in (None, subject.priority) else None
    team = outcome.team if outcome.team not in (None, subject.team) else None
    new_tags = outcome.tags - subject.facts.tags
    tags = tuple(sorted(subject.facts.tags | outcome.tags)) if new_tags else None
    if priority is None and team is None and tags is None:
        return None
    return Marking(priority, team, tags)


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "skills": [
            {"skill": n.skill, "level": n.level, "relax_after_s": n.relax_after_s}
            for n in outcome.needs
        ],
        "priority": outcome.priority.value if outcome.priority else None,
        "team": outcome.team,
        "tags": sorted(outcome.tags),
        "first_response_s": outcome.first_response_s,
        "requeue_when_away": outcome.requeue_when_away,
        "matched": list(outcome.matched),
    }


async def dry_run(
    session: AsyncSession, proposed: Sequence[Rule], limit: int = DRY_RUN_CONVERSATIONS
) -> dict[str, Any]:
    """What ``proposed`` would have decided, against the current rules, for the latest
    ``limit`` conversations."""
    current = await current_rules(session)
    ids = (await session.scalars(
        select(Conversation.id).order_by(Conversation.id.desc()).limit(limit)
    )).all()
    subjects = await load_subjects(session, ids)

    def compare() -> list[dict[str, Any]]:  # CPU work (patterns): run in a thread
        changes = []
        for conversation_id in ids:
            facts = subjects[conversation_id].facts
            before = outcome_json(evaluate(current, facts))
            after = outcome_json(evaluate(proposed, facts))
            if before != after:
                changes.append(
                    {"conversation_id": conversation_id, "before": before, "after": after}
                )
        return changes

    changes = await asyncio.to_thread(compare)
    return {
        "conversations": len(ids),
        "changed": len(changes),
        "changes": changes[:DRY_RUN_SHOWN],
    }


__all__ = [
    "RuleError", "Subject", "check_definition", "current_rules", "dry_run", "load_subjects",
    "outcome_json", "waiting_for",
]
