"""The console's Knowledge tab in a real browser (Debian's Chromium, headless), on `supportbot run`.

A content editor (`supportbot agents add --role editor`) logs in, searches, edits an answer, saves, tries a
question and sees the new answer; a second tab holding the old version gets the conflict with both versions;
the history's revert puts the file back byte for byte. No JavaScript error, no dialog, and an answer
holding an HTML tag shows its characters. A screenshot is saved to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import re
import shutil
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
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = REPO / "test-artifacts"
XSS = "<img src=x onerror=alert(1)>"
TIMEOUT_MS = 30_000
PASSWORD = "editor-password-1"


@dataclass
class Service:
    url: str
    kb: Path
    output: list[str] = field(default_factory=list)


@pytest.fixture
def service(tmp_path: Path, index_cache: Path) -> Iterator[Service]:
    """`supportbot run` on a copy of the demo content and a fresh SQLite database, with an editor."""
    shutil.copytree(REPO / "kb", tmp_path / "kb")
    shutil.copytree(REPO / "intents", tmp_path / "intents")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"kb: {{path: {tmp_path / 'kb'}}}\n"
        f"intents: {{path: {tmp_path / 'intents'}}}\n"
        "database: {url: 'sqlite+aiosqlite:///var/bot.db'}\n"
        f"embedding: {{cache_dir: {index_cache}}}\n"
        "policy: {calibration_file: null}\n",
        encoding="utf-8",
    )
    base = [SUPPORTBOT, "--config", str(config)]
    added = subprocess.run(
        [
            *base,
            "agents",
            "add",
            "--login",
            "ed",
            "--password",
            PASSWORD,
            "--role",
            "editor",
            "--name",
            "Edith",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    port = free_port()
    process = subprocess.Popen(
        [*base, "run", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
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
        yield Service(url, tmp_path / "kb", output)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def editor_page(browser: Browser, url: str, problems: list[str]) -> Page:
    """A fresh browser context logged in as the editor, on the Knowledge tab; errors go to `problems`."""
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US").new_page()
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto(url + "/agent")
    page.locator("#login-name").fill("ed")
    page.locator("#login-password").fill(PASSWORD)
    page.locator("#login-submit").click()
    expect(page.locator("#me-name")).to_contain_text("Edith (editor)")
    expect(page.locator("#knowledge-view")).to_be_visible()
    expect(page.locator("#tab-conversations")).to_be_hidden()
    return page


def open_entry(page: Page, search: str, entry: str) -> None:
    from playwright.sync_api import expect

    page.locator("#kb-search").fill(search)
    page.locator("#kb-search").press("Enter")
    row = page.locator(f'#kb-list tbody tr[data-id="{entry}"]')
    expect(row).to_have_count(1)
    row.click()
    expect(page.locator("#kb-editor h3")).to_have_text(entry)


def test_an_editor_edits_tries_and_reverts_in_the_browser(service: Service) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does it)"
    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    delivery = service.kb / "delivery.yaml"
    original = delivery.read_bytes()
    problems: list[str] = []
    new_answer = f"Delivery takes two days. {XSS}"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            # 1. the list, searched by text: the entry with its file, questions per language, answers
            first = editor_page(browser, service.url, problems)
            open_entry(first, "nova poshta", "delivery_time")
            row = first.locator('#kb-list tbody tr[data-id="delivery_time"]')
            expect(row).to_contain_text("delivery.yaml")
            expect(row.locator(".lang").first).to_have_text("en 6")

            # 2. a second tab opens the same entry now: it holds this version
            second = editor_page(browser, service.url, problems)
            open_entry(second, "parcel", "delivery_time")

            # 3. the first edits the answer and saves; trying the question gives the new answer, as text
            first.locator('[data-field="answer.en"]').fill(new_answer)
            first.locator("#kb-save").click()
            expect(first.locator("#toast")).to_contain_text("Saved")
            assert f'    en: "{new_answer}"' in delivery.read_text(encoding="utf-8")
            first.locator("#try-text").fill("How long does delivery take?")
            first.locator("#try-run").click()
            expect(first.locator("#try-result .answer")).to_have_text(new_answer)
            expect(first.locator("#try-result .decision")).to_have_text("answer · delivery_time")

            # 4. the second tab saves its stale version: a conflict with both versions, nothing overwritten
            second.locator('[data-field="answer.en"]').fill("A stale edit.")
            second.locator("#kb-save").click()
            conflict = second.locator(".kb-conflict")
            expect(conflict.locator(".theirs")).to_contain_text(new_answer)
            expect(conflict.locator(".mine")).to_contain_text("A stale edit.")
            assert "A stale edit." not in delivery.read_text(encoding="utf-8")

            # 5. the history: revert the save; the file is byte for byte what it was
            second.locator("#kb-take-theirs").click()
            second.locator("#kb-history-open").click()
            second.locator(".kb-history .revert").first.click()
            expect(second.locator("#toast")).to_contain_text("Restored")
            expect(second.locator('[data-field="answer.en"]')).to_have_value(
                re.compile("^Delivery takes 1-3")
            )
            assert delivery.read_bytes() == original
            first.screenshot(path=str(ARTIFACTS / "knowledge-tab.png"), full_page=True)

            # 6. everything was text: no element made of the answer, no dialog, no JavaScript error
            for page in (first, second):
                assert page.locator("#knowledge-view img").count() == 0
            # Chromium logs the refused save's status (the conflict above) as a failed resource: that one only
            stale = "Failed to load resource: the server responded with a status of 412 (Precondition Failed)"
            assert [p for p in problems if p != stale] == [] and problems.count(stale) == 1
        finally:
            browser.close()
