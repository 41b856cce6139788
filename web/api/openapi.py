"""The OpenAPI 3.1 document served at ``/api/v1/openapi.json``.

Written by hand next to the routes it describes; ``tests/web/test_openapi.py`` checks that
every API route appears here and every path here is routed.
"""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref("Error")}}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _error("Malformed JSON body"),
    "401": _error("No or unknown credentials"),
    "403": _error("Role too low, or CSRF token missing on a cookie-authenticated write"),
    "404": _error("Not found or not visible to this agent"),
    "413": _error("Body larger than the configured limit"),
    "422": _error("A field is invalid; `field` names it"),
}

NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["invalid", "not_found", "malformed_json"]},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "The input field at fault"},
            },
        }},
    },
    "RoutingRule": {"type": "object", "properties": {
        "id": {"type": "integer"}, "position": {"type": "integer"}, "name": {"type": "string"},
        "enabled": {"type": "boolean"}, "stop": {"type": "boolean"},
        "conditions": {"type": "array", "items": {"type": "object"}},
        "actions": {"type": "array", "items": {"type": "object"}}}},
    "Contact": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": ["string", "null"]},
        "email": {"type": ["string", "null"]}}},
    "Conversation": {
        "type": "object",
        "required": ["id", "channel", "subject", "status", "priority", "assignee_id",
                     "contact", "last_message_at"],
        "properties": {
            "id": {"type": "integer"},
            "channel": {"enum": ["email", "chat", "form"]},
            "subject": {"type": "string"},
            "status": {"enum": ["open", "pending", "snoozed", "resolved"]},
            "snoozed_until": NULLABLE_TIME,
            "priority": {"enum": ["low", "normal", "high", "urgent"]},
            "assignee_id": {"type": ["integer", "null"]},
            "team_id": {"type": ["integer", "null"]},
            "contact": _ref("Contact"),
            "tags": {"type": "array", "items": {"type": "string"}},
            "skills": {"type": "array", "items": {"type": "object", "properties": {
                "skill": {"type": "string"}, "level": {"type": "integer"}}}},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "first_response_at": NULLABLE_TIME,
            "last_customer_message_at": NULLABLE_TIME,
            "last_message_at": {"type": "string", "format": "date-time"},
            "resolved_at": NULLABLE_TIME,
        },
    },
    "Message": {"type": "object", "properties": {
        "id": {"type": "integer"},
        "conversation_id": {"type": "integer"},
        "direction": {"enum": ["inbound", "outbound", "note"]},
        "internal": {"type": "boolean"},
        "channel": {"enum": ["email", "chat", "form"]},
        "author_agent_id": {"type": ["integer", "null"]},
        "author_contact_id": {"type": ["integer", "null"]},
        "body_text": {"type": "string"},
        "body_html": {"type": ["string", "null"], "description": "Sanitised HTML"},
        "message_id": {"type": ["string", "null"]},
        "in_reply_to": {"type": ["string", "null"]},
        "references": {"type": "array", "items": {"type": "string"}},
        "delivery_status": {"enum": ["queued", "sending", "sent", "failed", None]},
        "delivery_error": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "attachments": {"type": "array", "items": {"type": "object"}},
    }},
    "ConversationDetail": {"allOf": [_ref("Conversation"), {"type": "object", "properties": {
        "messages": {"type": "array", "items": _ref("Message")}}}]},
    "Agent": {"type": "object", "properties": {
        "id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": "string"},
        "role": {"enum": ["agent", "supervisor", "admin"]},
        "presence": {"enum": ["online", "away", "offline"]},
        "active": {"type": "boolean"},
        "skills": {"type": "object", "additionalProperties": {"type": "integer"}},
        "capacity": {"type": "object", "additionalProperties": {"type": "integer"}},
        "team_ids": {"type": "array", "items": {"type": "integer"}}}},
}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
RULE_ID = {"name": "rule_id", "in": "path", "required": True, "schema": {"type": "integer"}}
RULE_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["name", "actions"],
    "description": "A routing rule; the format is in README (Routing rules).",
    "properties": {"name": {"type": "string"}, "enabled": {"type": "boolean"},
                   "stop": {"type": "boolean"}, "position": {"type": "integer"},
                   "conditions": {"type": "array", "items": {"type": "object"}},
                   "actions": {"type": "array", "items": {"type": "object"}}}}}}}

PATHS: dict[str, Any] = {
    "/conversations": {"get": {
        "summary": "List conversations visible to the caller, newest activity first",
        "parameters": [
            _query("status", "Comma-separated statuses"),
            _query("channel", "Comma-separated channels"),
            _query("assignee", "`me`, `none`, or an agent id"),
            _query("team", "Team id", {"type": "integer"}),
            _query("tag", "One tag"),
            _query("q", "Text searched in subjects and messages (max 200 characters)"),
            _query("order", "`recent` (last activity, default), `newest` or `oldest`"),
            _query("limit", "Page size, 1-100 (default 25)", {"type": "integer"}),
            _query("cursor", "`next_cursor` of the previous page"),
        ],
        "responses": {"200": _json({"type": "object", "properties": {
            "items": {"type": "array", "items": _ref("Conversation")},
            "next_cursor": {"type": ["string", "null"]}}}), **ERRORS},
    }, "post": {
        "summary": "Start an email conversation with a customer; the body is sent as the "
                   "first reply through the outbox",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["contact", "subject", "body"],
            "additionalProperties": False, "properties": {
                "channel": {"const": "email"},
                "contact": {"type": "object", "required": ["email"], "properties": {
                    "email": {"type": "string"}, "name": {"type": "string"}}},
                "subject": {"type": "string", "maxLength": 998},
                "body": {"type": "string", "maxLength": 100000},
                "priority": {"enum": ["low", "normal", "high", "urgent"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "assignee_id": {"type": ["integer", "null"]},
                "team_id": {"type": ["integer", "null"]}}}}}},
        "responses": {"201": _json(_ref("ConversationDetail"), "Created"), **ERRORS},
    }},
    "/conversations/{id}": {
        "get": {"summary": "One conversation with its messages", "parameters": [ID],
                "responses": {"200": _json(_ref("ConversationDetail")), **ERRORS}},
        "patch": {
            "summary": "Change status, snooze, priority, tags, assignee or team",
            "parameters": [ID],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "properties": {
                    "status": {"enum": ["open", "pending", "snoozed", "resolved"]},
                    "snoozed_until": {"type": "string", "format": "date-time"},
                    "priority": {"enum": ["low", "normal", "high", "urgent"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "assignee_id": {"type": ["integer", "null"]},
                    "team_id": {"type": ["integer", "null"]}}}}}},
            "responses": {"200": _json(_ref("ConversationDetail")), **ERRORS},
        },
    },
    "/conversations/{id}/messages": {"post": {
        "summary": "Reply through the conversation's channel (queued in the outbox), "
                   "or add an internal note",
        "parameters": [ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["body"], "additionalProperties": False,
            "properties": {"body": {"type": "string", "maxLength": 100000},
                           "internal": {"type": "boolean", "default": False},
                           "html": {"type": "string"}}}}}},
        "responses": {"201": _json(_ref("Message"), "Stored and queued"), **ERRORS},
    }},
    "/agents": {
        "get": {"summary": "List agents (supervisor or admin)",
                "responses": {"200": _json({"type": "object", "properties": {
                    "items": {"type": "array", "items": _ref("Agent")}}}), **ERRORS}},
        "post": {"summary": "Create an agent (admin)",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["email", "name", "password"],
                     "properties": {
                         "email": {"type": "string"}, "name": {"type": "string"},
                         "role": {"enum": ["agent", "supervisor", "admin"]},
                         "password": {"type": "string", "minLength": 8},
                         "skills": {"type": "object"}, "capacity": {"type": "object"}}}}}},
                 "responses": {"201": _json(_ref("Agent")), "409": _error("Email taken"),
                               **ERRORS}},
    },
    "/contacts/{id}/merge": {"post": {
        "summary": "Merge another contact into this one (supervisor or admin): its "
                   "identities and conversations move here",
        "parameters": [ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["merge_id"], "additionalProperties": False,
            "properties": {"merge_id": {"type": "integer"}}}}}},
        "responses": {"200": _json({"type": "object", "properties": {
            "id": {"type": "integer"}, "merged": {"type": "integer"}}}), **ERRORS}}},
    "/agents/me": {"get": {"summary": "The caller's own agent record",
                           "responses": {"200": _json(_ref("Agent")), **ERRORS}}},
    "/agents/me/presence": {"put": {
        "summary": "Set one's own presence",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["presence"],
            "properties": {"presence": {"enum": ["online", "away", "offline"]}}}}}},
        "responses": {"200": _json({"type": "object"}), **ERRORS}}},
    "/conversations/{id}/queue": {"get": {
        "summary": "A waiting chat's place in the queue and expected wait in seconds "
                   "(null when no agent who could take it is online); 404 unless waiting",
        "parameters": [ID],
        "responses": {"200": _json({"type": "object", "properties": {
            "position": {"type": "integer"}, "expected_wait_s": {"type": ["integer", "null"]},
            "agents_online": {"type": "integer"}}}), **ERRORS}}},
    "/conversations/{id}/accept": {"post": {
        "summary": "Accept the chat offered to you (routing with an accept timeout); 409 once "
                   "the offer is gone (expired, declined or taken)",
        "parameters": [ID],
        "responses": {"200": _json(_ref("ConversationDetail")), **ERRORS}}},
    "/conversations/{id}/decline": {"post": {
        "summary": "Turn down the chat offered to you: it is offered to someone else",
        "parameters": [ID],
        "responses": {"204": {"description": "Declined"}, **ERRORS}}},
    "/routing/rules": {
        "get": {"summary": "The routing rules in order, and the rule-set version "
                           "(supervisor or admin)",
                "responses": {"200": _json({"type": "object", "properties": {
                    "version": {"type": "integer"},
                    "rules": {"type": "array", "items": _ref("RoutingRule")}}}), **ERRORS}},
        "post": {"summary": "Add a routing rule, at `position` or last (supervisor or admin); "
                            "422 names the path of the first problem",
                 "requestBody": RULE_BODY,
                 "responses": {"201": _json(_ref("RoutingRule"), "Created"), **ERRORS}},
    },
    "/routing/rules/{rule_id}": {
        "put": {"summary": "Replace a routing rule (supervisor or admin)",
                "parameters": [RULE_ID], "requestBody": RULE_BODY,
                "responses": {"200": _json(_ref("RoutingRule")), **ERRORS}},
        "delete": {"summary": "Remove a routing rule (supervisor or admin)",
                   "parameters": [RULE_ID],
                   "responses": {"204": {"description": "Removed"}, **ERRORS}},
    },
    "/routing/rules/order": {"put": {
        "summary": "Put the routing rules in a new order: every rule id once",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["ids"],
            "properties": {"ids": {"type": "array", "items": {"type": "integer"}}}}}}},
        "responses": {"200": _json({"type": "object"}), **ERRORS}}},
    "/routing/rules/dry-run": {"post": {
        "summary": "What a whole proposed rule set would have decided for the latest 500 "
                   "conversations, compared with the current rules",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["rules"],
            "properties": {"rules": {"type": "array", "items": {"type": "object"}}}}}}},
        "responses": {"200": _json({"type": "object", "properties": {
            "conversations": {"type": "integer"}, "changed": {"type": "integer"},
            "changes": {"type": "array", "items": {"type": "object"}}}}), **ERRORS}}},
    "/routing/rules/history": {"get": {
        "summary": "Changes to the routing rules, newest first: who, when, version, before "
                   "and after",
        "responses": {"200": _json({"type": "object"}), **ERRORS}}},
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Guichet API", "version": "1",
             "description": "Every error answers with the `Error` shape. Authenticate with "
                            "`Authorization: Bearer <token>` (`guichet token create EMAIL`) or "
                            "the login session cookie plus an `X-CSRF-Token` header on writes."},
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}, {"session": []}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "guichet_session"},
        },
    },
}
