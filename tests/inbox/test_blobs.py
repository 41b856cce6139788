"""Attachments: bytes stored once per SHA-256 under the data directory, rows describe them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from inbox.blobs import BlobStore
from inbox.db import Store
from inbox.inbound import InboundAttachment
from inbox.ingest import Ingestor
from inbox.models import Attachment
from inbox.queries import conversation_detail
from tests.conftest import inbound

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_attachments_are_stored_by_content_hash(
    store: Store, ingestor: Ingestor, tmp_path: Path
) -> None:
    root = tmp_path / "attachments"
    result = await ingestor.ingest(inbound(
        "<a@x>", attachments=(
            InboundAttachment("invoice.pdf", "application/pdf", PDF),
            InboundAttachment("logo.png", "image/png", PNG),
        ),
    ))

    digest = hashlib.sha256(PDF).hexdigest()
    assert (root / digest[:2] / digest[2:4] / digest).read_bytes() == PDF
    assert ingestor.blobs.read(hashlib.sha256(PNG).hexdigest()) == PNG
    assert len(_files(root)) == 2
    async with store.read() as session:
        rows = list(await session.scalars(
            select(Attachment).where(Attachment.message_id == result.message_id)
            .order_by(Attachment.id)
        ))
    assert [(a.filename, a.media_type, a.size, a.sha256) for a in rows] == [
        ("invoice.pdf", "application/pdf", len(PDF), digest),
        ("logo.png", "image/png", len(PNG), hashlib.sha256(PNG).hexdigest()),
    ]


async def test_same_bytes_are_stored_once(store: Store, ingestor: Ingestor, tmp_path: Path) -> None:
    await ingestor.ingest(inbound(
        "<a@x>", attachments=(InboundAttachment("a.pdf", "application/pdf", PDF),
                              InboundAttachment("copy.pdf", "application/pdf", PDF)),
    ))
    second = await ingestor.ingest(inbound(
        "<b@x>", text="again", sender="other@example.com",
        attachments=(InboundAttachment("renamed.bin", "application/octet-stream", PDF),),
    ))

    assert len(_files(tmp_path / "attachments")) == 1
    async with store.read() as session:
        rows = list(await session.scalars(select(Attachment)))
        detail = await conversation_detail(session, second.conversation_id)
    assert len(rows) == 3
    assert {a.sha256 for a in rows} == {hashlib.sha256(PDF).hexdigest()}
    assert detail is not None
    [message] = detail.messages
    assert [a.filename for a in message.attachments] == ["renamed.bin"]


async def test_attachments_change_the_content_hash(store: Store, ingestor: Ingestor) -> None:
    plain = await ingestor.ingest(inbound("<a@x>"))
    with_file = await ingestor.ingest(
        inbound("<a@x>", attachments=(InboundAttachment("a.png", "image/png", PNG),))
    )
    assert not with_file.duplicate and with_file.message_id != plain.message_id


def test_blob_store_refuses_names_that_are_not_digests(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    for bad in ("../../etc/passwd", "A" * 64, "0" * 63, "g" * 64):
        with pytest.raises(ValueError):
            blobs.path(bad)
    digest = blobs.put(b"hello")
    assert blobs.put(b"hello") == digest == hashlib.sha256(b"hello").hexdigest()
    assert blobs.read(digest) == b"hello"
    assert not any(p.name.startswith(".incoming-") for p in tmp_path.rglob("*"))
