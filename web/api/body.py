"""Reading and checking JSON request bodies: bounded size, one error shape."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from starlette.requests import Request

from web.auth import MAX_ID
from web.errors import ApiError
from web.services import services

E = TypeVar("E", bound=StrEnum)


async def read_body(request: Request, media_type: str) -> bytes:
    """The raw body, refused with 415 unless it is ``media_type`` and 413 past the limit."""
    limit = services(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body is larger than {limit} bytes")
    sent_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if sent_type != media_type:
        raise ApiError(415, f"send the body as {media_type}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request, max_fields: int = 20) -> dict[str, str]:
    """A bounded urlencoded form (our pages post nothing else)."""
    raw = await read_body(request, "application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(raw.decode(), max_num_fields=max_fields, keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "malformed form body", code="malformed_form") from None
    return dict(pairs)


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object; 413 past the size limit, 400 if it is not JSON."""
    raw = await read_body(request, "application/json")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply", code="malformed_json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}", code="malformed_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the JSON body must be an object", code="malformed_json")
    return data


def reject_unknown(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(422, f"unknown field {unknown[0]!r}", field=unknown[0])


def get_str(data: dict[str, Any], field: str, *, required: bool = False) -> str | None:
    value = data.get(field)
    if value is None:
        if required:
            raise ApiError(422, f"{field} is required", field=field)
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"{field} must be a string", field=field)
    return value


def get_bool(data: dict[str, Any], field: str, default: bool) -> bool:
    value = data.get(field, default)
    if not isinstance(value, bool):
        raise ApiError(422, f"{field} must be true or false", field=field)
    return value


def get_enum(data: dict[str, Any], field: str, enum: type[E]) -> E | None:
    value = get_str(data, field)
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ApiError(422, f"{field} must be one of {allowed}", field=field) from None


def parse_enum(value: str, field: str, enum: type[E]) -> E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ApiError(422, f"{field} must be one of {allowed}", field=field) from None


def get_datetime(data: dict[str, Any], field: str) -> datetime | None:
    value = get_str(data, field)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"{field} must be an ISO 8601 date-time", field=field) from None
    if parsed.tzinfo is None:
        raise ApiError(422, f"{field} must include a timezone", field=field)
    return parsed


def get_id(data: dict[str, Any], field: str) -> int | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_ID:
        raise ApiError(422, f"{field} must be a positive integer or null", field=field)
    return value
