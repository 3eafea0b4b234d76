"""The demo shop's chat widget and the agent console in a real browser (Debian's Chromium, headless).

`supportbot run` is started as a newcomer starts it; the agent logs in with the demo account it prints.
Screenshots of both pages are saved to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support.cli import SUPPORTBOT
from tests.support.paths import REPO
from tests.support.server import free_port
from tests.support.services import CHROMIUM

if TYPE_CHECKING:  # imported in the test: without playwright the browser marker skips it, not collection
    from playwright.sync_api import Dialog, Page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = REPO / "test-artifacts"
XSS = "<img src=x onerror=alert(1)>"
TIMEOUT_MS = 20_000


@dataclass
class Service:
    url: str
    login: str
    password: str
    output: list[str] = field(default_factory=list)


@pytest.fixture
def service(tmp_path: Path, index_cache: Path) -> Iterator[Service]:
    """`supportbot run` on a fresh SQLite database, with the demo shop's order provider on the card."""
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"kb: {{path: {REPO / 'kb'}}}\n"
        f"intents: {{path: {REPO / 'intents'}}}\n"
        "database: {url: 'sqlite+aiosqlite:///var/bot.db'}\n"
        f"embedding: {{cache_dir: {index_cache}}}\n"
        "policy: {calibration_file: null}\n"
        "handoff: {context_providers: {orders: {callable: 'bot.demo.shop:orders'}}}\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [SUPPORTBOT, "--config", str(config), "run", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a session's first start also embeds the KB into the index cache
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "supportbot run did not answer /healthz:\n" + "".join(output)
            time.sleep(0.2)
        printed = next((line for line in output if "demo agent:" in line), "")
        found = re.search(r"login (\S+) password (\S+)", printed)
        assert found, "no demo agent printed at start-up:\n" + "".join(output)
        yield Service(url, found.group(1), found.group(2), output)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def ask(page: Page, text: str) -> None:
    page.locator(".sb-input").fill(text)
    page.locator(".sb-input").press("Enter")


def test_visitor_and_agent_in_the_browser(service: Service) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does it)"
    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    dialogs: list[str] = []

    def no_dialogs(dialog: Dialog) -> None:  # alert(1) would open one if any text were parsed as HTML
        dialogs.append(dialog.message)
        dialog.dismiss()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            shop = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US").new_page()
            shop.on("dialog", no_dialogs)
            shop.goto(service.url + "/")
            expect(shop.locator(".nw-logo")).to_have_text("NORTHWIND")

            # 1. the visitor opens the chat: a greeting with topic buttons
            shop.locator(".sb-launcher").click()
            expect(shop.locator(".sb-from-bot .sb-choice").first).to_be_visible()

            # 2. the XSS string is only text; the bot honestly does not understand it
            ask(shop, XSS)
            expect(shop.locator(".sb-in .sb-bubble").last).to_have_text(XSS)
            expect(shop.locator(".sb-out")).to_have_count(2)

            # 3. a FAQ question gets the answer, with feedback buttons
            ask(shop, "How can I pay for my order?")
            answer = shop.locator(".sb-from-bot").last
            expect(answer.locator(".sb-bubble")).to_contain_text("BLIK")
            expect(answer.locator(".sb-choice")).to_have_count(2)

            # 4. asking for a human: queued, with the position in the header
            ask(shop, "I want to talk to a human")
            expect(shop.locator(".sb-out").last).to_contain_text("number 1 in the queue")
            expect(shop.locator(".sb-status")).to_contain_text("number 1 in the queue")

            # 5. the agent logs in (second browser context) and goes online: the conversation is theirs
            console = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US").new_page()
            console.on("dialog", no_dialogs)
            console.goto(service.url + "/agent")
            console.locator("#login-name").fill(service.login)
            console.locator("#login-password").fill(service.password)
            console.locator("#login-submit").click()
            expect(console.locator("#me-name")).to_contain_text("Demo Agent")
            waiting = console.locator("#queue-list .conv-item")  # offline still: the queue, with the wait
            expect(waiting).to_have_count(1)
            expect(waiting.locator(".wait")).to_have_text(re.compile(r"^waiting \d+ s$"))
            expect(waiting.locator(".flag-sla")).to_have_count(0)
            console.locator("#my-status").select_option("online")
            expect(console.locator("#queue-list .conv-item")).to_have_count(0)
            mine = console.locator("#mine-list .conv-item")
            expect(mine).to_have_count(1)
            expect(mine.locator(".unread")).to_have_text("3")  # three customer messages nobody has read
            expect(shop.locator(".sb-status")).to_contain_text("Demo Agent")

            # 6. the conversation: transcript with the bot part marked, and the context card
            mine.click()
            expect(console.locator("#conv-title")).to_contain_text("Web visitor")
            bot_part = console.locator("#transcript .bot-part")
            expect(bot_part.locator(".msg-bot .badge-bot").first).to_have_text("BOT")
            expect(bot_part.locator(".msg-bot").filter(has_text="BLIK")).to_have_count(1)
            expect(bot_part.locator(".msg-in .text").filter(has_text="onerror")).to_have_text(XSS)
            card = console.locator("#card")
            expect(card.locator(".profile")).to_contain_text("webchat")
            expect(card.locator(".answered")).to_contain_text("payment_methods")
            expect(card.locator(".provider")).to_contain_text("NW-")  # order data from the context provider
            expect(mine.locator(".unread")).to_have_count(0)  # read now

            # 7. a suggested answer, inserted with one click, edited, sent
            suggestion = console.locator('.suggestion[data-entry="payment_methods"]')
            expect(suggestion).to_contain_text("How can I pay for my order?")
            suggestion.locator(".insert").click()
            reply = console.locator("#reply-text")
            expect(reply).to_have_value(re.compile("BLIK"))
            reply.press("Control+Home")
            reply.press_sequentially("Hi, Demo here. ")
            console.locator("#reply-send").click()
            expect(console.locator("#transcript .human-part .msg-agent")).to_contain_text("Hi, Demo here.")

            # 8. the visitor sees the agent's reply live
            from_agent = shop.locator(".sb-from-agent")
            expect(from_agent.locator(".sb-who")).to_have_text("Demo Agent")
            expect(from_agent.locator(".sb-bubble")).to_contain_text("Hi, Demo here. You can pay by Visa")
            console.locator("#note-text").fill(f"customer wrote {XSS}")
            console.locator("#note-add").click()
            expect(card.locator(".notes li")).to_have_text(f"demo: customer wrote {XSS}")
            console.screenshot(path=str(ARTIFACTS / "agent-console.png"), full_page=True)

            # 9. resolve: the visitor is told and asked to rate the chat, rates it, and the bot answers again
            console.locator("#resolve").click()
            expect(shop.locator(".sb-from-system", has_text="This conversation is closed")).to_have_count(1)
            rating = shop.locator(".sb-from-system").last
            expect(rating.locator(".sb-bubble")).to_have_text("How did we do? Please rate this conversation.")
            expect(rating.locator(".sb-choice")).to_have_text(["😞 Bad", "😐 OK", "😀 Great"])
            rating.locator(".sb-choice", has_text="Great").click()
            expect(shop.locator(".sb-from-bot .sb-bubble").last).to_have_text("Thank you for your rating!")
            expect(console.locator("#mine-list .conv-item")).to_have_count(0)
            ask(shop, "How long does delivery take?")
            expect(shop.locator(".sb-from-bot .sb-bubble").last).to_contain_text("working days")
            shop.screenshot(path=str(ARTIFACTS / "webchat-visitor.png"))

            # 10. Insights (the demo agent is a supervisor): the numbers, the XSS string among the misses, and
            # the payment answer followed by a handoff
            console.locator("#tab-insights").click()
            expect(console.locator("#insights-numbers .tile").first).to_contain_text("Conversations")
            expect(console.locator("#misses .miss-text").filter(has_text="onerror")).to_have_text(XSS)
            payment = console.locator('#answers tr[data-entry="payment_methods"]')
            expect(payment.locator(".handed-off")).to_have_text("1 (100 %)")
            console.locator("#tab-conversations").click()

            # 11. the XSS string stayed text on both pages: no element made of it, no alert
            assert shop.locator("#supportbot-widget img").count() == 0
            assert console.locator("#transcript img, #card img, #misses img").count() == 0
            assert dialogs == []
            print(f"\nscreenshots: {ARTIFACTS / 'webchat-visitor.png'}, {ARTIFACTS / 'agent-console.png'}")
        finally:
            browser.close()
