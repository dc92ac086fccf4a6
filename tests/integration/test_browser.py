"""The web page in a real browser: a classic match from the first click to the reveal.

Drives Debian's chromium (``playwright install`` cannot download browsers on
these machines) against the running app at ``serve_url``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, ViewportSize, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PHONE_VIEWPORT: ViewportSize = {"width": 360, "height": 780}
ROUNDS = 5
MAX_ANSWER_CHARS = 280
SCRIPT_ANSWER = "<script>alert(1)</script>"
# Deadlines in the test config are about 8 s per phase; a step waits for at
# most a few of them.
STEP_TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no chromium at {CHROMIUM}: install Debian's chromium package "
        "(.ci/run does)",
    ),
]


@pytest.fixture
def phone_page(serve_url: str) -> Iterator[Page]:
    """A fresh page 360 px wide, with the app as its base URL."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = browser.new_context(viewport=PHONE_VIEWPORT, base_url=serve_url)
        yield context.new_page()
        browser.close()


@pytest.fixture
def dialogs(phone_page: Page) -> list[str]:
    """Messages of every dialog the page opened; each one is dismissed."""
    opened: list[str] = []

    def record(dialog: Dialog) -> None:
        opened.append(dialog.message)
        dialog.dismiss()

    phone_page.on("dialog", record)
    return opened


@contextmanager
def screenshot_on_failure(page: Page, name: str) -> Iterator[None]:
    """Keep a picture of the page when the block fails, for the CI artifacts."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / name, full_page=True)
        raise


def answer_prompt(page: Page, round_number: int, text: str) -> None:
    """Wait for the round's prompt, type an answer and submit it."""
    expect(page.get_by_test_id("round-label")).to_have_text(
        f"Round {round_number}/{ROUNDS}", timeout=STEP_TIMEOUT_MS
    )
    expect(page.get_by_test_id("phase")).to_have_attribute(
        "data-phase", "answering", timeout=STEP_TIMEOUT_MS
    )
    expect(page.get_by_test_id("prompt")).not_to_be_empty()

    page.get_by_test_id("answer-input").fill(text)
    expect(page.get_by_test_id("char-counter")).to_have_text(
        f"{len(text)}/{MAX_ANSWER_CHARS}"
    )
    page.get_by_test_id("answer-submit").click()

    expect(page.get_by_test_id("your-answer")).to_have_text(
        text, timeout=STEP_TIMEOUT_MS
    )
    expect(page.get_by_test_id("answer-submit")).to_be_disabled()


def wait_for_voting(page: Page) -> None:
    expect(page.get_by_test_id("phase")).to_have_attribute(
        "data-phase", "voting", timeout=STEP_TIMEOUT_MS
    )
    expect(page.get_by_test_id("answers-list")).to_be_visible()


def vote_for_another_seat(page: Page, round_number: int) -> None:
    """Vote for the first other seat and see the vote in the round's results."""
    you = page.get_by_test_id("seat-label").inner_text()
    choice = page.locator('[data-testid="vote-button"]:enabled').first
    expect(choice).to_be_visible(timeout=STEP_TIMEOUT_MS)
    target = choice.get_attribute("data-seat")
    assert target and target != you

    choice.click()

    recorded = (
        page.get_by_test_id("results")
        .locator(f'[data-round="{round_number}"]')
        .locator(f'[data-voter="{you}"]')
    )
    expect(recorded).to_have_attribute("data-target", target, timeout=STEP_TIMEOUT_MS)


def answer_texts(page: Page, scope: str) -> list[str]:
    """The textContent of every answer text inside the element ``scope``."""
    return page.locator(scope).get_by_test_id("answer-text").all_text_contents()


def horizontal_overflow_px(page: Page) -> int:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width - PHONE_VIEWPORT["width"]


@pytest.mark.timeout(300)
def test_browser_plays_classic_match_to_reveal(
    phone_page: Page, dialogs: list[str]
) -> None:
    page = phone_page
    page.goto("/")

    with screenshot_on_failure(page, "browser-failure.png"):
        page.get_by_test_id("create-classic").click()
        for round_number in range(1, ROUNDS + 1):
            text = (
                SCRIPT_ANSWER
                if round_number == 1
                else f"round {round_number}: toast with honey, obviously"
            )
            answer_prompt(page, round_number, text)
            wait_for_voting(page)
            if round_number == 1:
                ballot = answer_texts(page, '[data-testid="answers-list"]')
                assert SCRIPT_ANSWER in ballot
                assert horizontal_overflow_px(page) <= 0
            vote_for_another_seat(page, round_number)

        reveal = page.get_by_test_id("reveal")
        expect(reveal).to_be_visible(timeout=STEP_TIMEOUT_MS)
        expect(page.get_by_test_id("winners")).to_have_text(re.compile(r"Winners?: \S"))
        you = page.get_by_test_id("seat-label").inner_text()
        humans = reveal.locator('[data-kind="human"]')
        expect(humans).to_have_count(1)
        expect(humans).to_have_attribute("data-seat", you)

    first_round = '[data-testid="results"] [data-round="1"]'
    assert SCRIPT_ANSWER in answer_texts(page, first_round)
    assert page.locator("body script").count() == 0
    assert dialogs == []
    assert horizontal_overflow_px(page) <= 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "browser-reveal.png", full_page=True)
