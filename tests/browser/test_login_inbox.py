"""An agent in a real browser: login, the inbox list, live updates over the websocket, the
conversation page and its reply form, and hostile customer content shown as plain text."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from playwright.async_api import Page, expect

from inbox.inbound import InboundMessage, Sender
from inbox.types import Channel
from tests.browser.conftest import DEMO_AGENT, Browsing, LiveServer
from web.demo import DEMO_PASSWORD

DEMO_SUBJECTS = (
    "Charged twice for my March invoice",
    "API returns 502 since this morning",
    "Demande de remboursement",
    "Feature request: export to CSV",
    "Hi! Can I change the delivery address of my order?",
)
HOSTILE_SCRIPT = "<script>alert(1)</script>"
HOSTILE_IMG = '<img src=x onerror="alert(document.domain)">'
HOSTILE = f"Hello {HOSTILE_SCRIPT} and {HOSTILE_IMG} bye"


async def log_in(page: Page, live: LiveServer, email: str = DEMO_AGENT,
                 password: str = DEMO_PASSWORD) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()


async def open_inbox(page: Page, live: LiveServer) -> None:
    await log_in(page, live)
    await expect(page).to_have_url(live.url + "/")
    # The websocket is connected: from here on, events reach the page.
    await expect(page.locator("#live")).to_have_text("live")


def chat(external_id: str, text: str, *, name: str = "Visitor", subject: str = "",
         address: str = "visitor-e2e", conversation_id: int | None = None) -> InboundMessage:
    return InboundMessage(
        channel=Channel.CHAT, external_id=external_id, sender=Sender(address, name),
        subject=subject, text=text, received_at=datetime.now(UTC),
        conversation_id=conversation_id,
    )


async def test_demo_agent_logs_in_and_sees_the_demo_conversations(
    browsing: Browsing, live: LiveServer
) -> None:
    page = browsing.page
    await log_in(page, live)
    await expect(page).to_have_url(live.url + "/")
    await expect(page.locator("header .who")).to_contain_text("Ada Agent")
    rows = page.locator("#conversations tbody tr.conversation")
    for subject in DEMO_SUBJECTS:
        await expect(rows.filter(has_text=subject)).to_have_count(1)
    await expect(rows).to_have_count(len(DEMO_SUBJECTS))
    assert browsing.problems() == []


async def test_wrong_password_shows_the_error_and_no_session(
    browsing: Browsing, live: LiveServer
) -> None:
    page = browsing.page
    await log_in(page, live, password="not-the-password")
    await expect(page).to_have_url(live.url + "/login")
    await expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    # The email is kept, the password is not.
    await expect(page.get_by_label("Email")).to_have_value(DEMO_AGENT)
    await expect(page.get_by_label("Password")).to_have_value("")
    await page.goto("/")
    await expect(page).to_have_url(live.url + "/login")
    assert browsing.problems() == []


async def test_logout_returns_to_login_and_ends_the_session(
    browsing: Browsing, live: LiveServer
) -> None:
    page = browsing.page
    await open_inbox(page, live)
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(live.url + "/login")
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()
    await page.goto("/")
    await expect(page).to_have_url(live.url + "/login")
    assert browsing.problems() == []


async def test_new_conversation_appears_in_the_open_inbox_without_reload(
    browsing: Browsing, live: LiveServer
) -> None:
    page = browsing.page
    await open_inbox(page, live)
    await page.evaluate("window.__notReloaded = true")
    subject = "Live: my parcel is stuck in customs"
    result = await live.svc.ingestor.ingest(
        chat("live-1", "It has been at customs for a week.", name="Noor Live", subject=subject)
    )
    first_row = page.locator("#conversations tbody tr").first
    await expect(first_row).to_contain_text(subject, timeout=2_000)
    await expect(first_row).to_have_attribute("data-id", str(result.conversation_id))
    await expect(first_row).to_contain_text("Noor Live")
    await expect(first_row.get_by_role("link", name=subject)).to_have_attribute(
        "href", f"/c/{result.conversation_id}"
    )
    assert await page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    await expect(page.locator("#conversations tbody tr.conversation")).to_have_count(
        len(DEMO_SUBJECTS) + 1
    )
    assert browsing.problems() == []


async def test_conversation_page_shows_the_thread_and_a_sent_reply_is_queued(
    browsing: Browsing, live: LiveServer
) -> None:
    page = browsing.page
    await open_inbox(page, live)
    await page.get_by_role("link", name="Charged twice for my March invoice").click()
    await expect(page).to_have_url(re.compile(r"/c/\d+$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Charged twice for my March invoice"
    )
    thread = page.locator("#thread")
    await expect(thread.locator("li.message.inbound .body")).to_contain_text(
        "my card was charged twice for invoice 2026-0312"
    )
    await expect(thread.locator("li.message.note")).to_contain_text("internal note")
    await expect(thread.locator("li.message.note .body")).to_contain_text("refund requested")

    reply = "Hello Lena, we refunded the second payment today. Sorry for the trouble!"
    await page.locator("textarea[name=body]").fill(reply)
    await page.get_by_role("button", name="Send").click()
    await expect(page).to_have_url(re.compile(r"/c/\d+$"))
    sent = thread.locator("li.message.outbound")
    await expect(sent).to_have_count(1)
    await expect(sent.locator(".body")).to_have_text(reply)
    await expect(sent.locator(".delivery")).to_have_text("queued")
    await expect(page.locator("textarea[name=body]")).to_have_value("")
    assert browsing.problems() == []


async def test_new_customer_message_appears_in_the_open_thread(
    browsing: Browsing, live: LiveServer
) -> None:
    page = browsing.page
    first = await live.svc.ingestor.ingest(chat("thread-1", "Is anyone there?", name="Ines"))
    await open_inbox(page, live)
    await page.goto(f"/c/{first.conversation_id}")
    await expect(page.locator("#live")).to_have_text("live")
    await live.svc.ingestor.ingest(
        chat("thread-2", "Hello? Still waiting.", name="Ines",
             conversation_id=first.conversation_id)
    )
    bodies = page.locator("#thread li.message.inbound .body")
    await expect(bodies).to_have_text(["Is anyone there?", "Hello? Still waiting."],
                                      timeout=2_000)
    assert browsing.problems() == []


async def assert_inert(page: Page, scope: str) -> None:
    """Nothing the customer typed became markup inside ``scope``."""
    await expect(page.locator(f"{scope} script")).to_have_count(0)
    await expect(page.locator(f"{scope} img")).to_have_count(0)
    await expect(page.locator(f"{scope} [onerror]")).to_have_count(0)


async def test_hostile_content_is_shown_as_text_and_never_runs(
    browsing: Browsing, live: LiveServer
) -> None:
    page = browsing.page
    await open_inbox(page, live)
    subject = f"Refund {HOSTILE_SCRIPT}"
    # Arrives while the inbox is open: the live row is built by inbox.js.
    result = await live.svc.ingestor.ingest(
        chat("evil-1", HOSTILE, name=f"Eve {HOSTILE_IMG}", subject=subject, address="eve")
    )
    row = page.locator(f'#conversations tr[data-id="{result.conversation_id}"]')
    await expect(row.get_by_role("link")).to_have_text(subject, timeout=2_000)
    await expect(row).to_contain_text(f"Eve {HOSTILE_IMG}")
    await assert_inert(page, "#conversations")

    # Rendered by the server after a reload.
    await page.reload()
    await expect(row.get_by_role("link")).to_have_text(subject)
    await expect(row).to_contain_text(f"Eve {HOSTILE_IMG}")
    await assert_inert(page, "#conversations")

    # The conversation page: server-rendered first message, then a live one via inbox.js.
    await row.get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(subject)
    await expect(page).to_have_title(f"{subject} · Guichet")
    await expect(page.locator("#live")).to_have_text("live")
    await live.svc.ingestor.ingest(
        chat("evil-2", f"Again: {HOSTILE_IMG}{HOSTILE_SCRIPT}", name="Eve", address="eve",
             conversation_id=result.conversation_id)
    )
    bodies = page.locator("#thread li.message .body")
    await expect(bodies).to_have_text([HOSTILE, f"Again: {HOSTILE_IMG}{HOSTILE_SCRIPT}"],
                                      timeout=2_000)
    await assert_inert(page, "#thread")
    await assert_inert(page, "h1")
    # Give an injected handler (img onerror fires on load failure) time to have run.
    await page.wait_for_timeout(300)
    assert browsing.dialogs == []
    assert browsing.problems() == []
