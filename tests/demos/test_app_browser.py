"""A real browser (Debian's chromium driven by Playwright) speaks in the Speak tab and draws a note in Notes.

Screenshots go under the test's ``tmp_path`` and are copied to ``$ACCELERANDO_TEST_ARTIFACTS`` when set.
Without chromium or Playwright the tests skip, except under ``CI``, where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
]


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; `make setup` installs it)"
    if shutil.which("chromium") is None:
        return "Debian's chromium is not installed (apt-get install chromium; `make system-deps` installs it)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing_browser()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the browser tests: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def _save(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    artifacts = os.environ.get("ACCELERANDO_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / name)
    assert path.stat().st_size > 1000
    return path


_PLAYED = """(selector) => {
    const audio = document.querySelector(selector + ' audio');
    return audio !== null && (audio.currentTime > 0.2 || audio.ended);
}"""

# Clicks Speak from the page and times, on its own, the click to the first advance of the <audio>
# element's clock (polled, not the `playing` event that the app's timer listens to).
_CLICK_AND_TIME = """() => {
    const audio = document.querySelector('#speak-audio audio');
    const before = audio ? audio.currentSrc : '';
    window.testTiming = {start: performance.now()};
    const poll = setInterval(() => {
        const now = document.querySelector('#speak-audio audio');
        if (now && now.currentSrc !== before && now.currentTime > 0) {
            window.testTiming.sound = performance.now();
            clearInterval(poll);
        }
    }, 5);
    document.querySelector('#speak-button').click();
}"""


def _player_ms(page) -> int:
    """The page's own figure, once it shows one: "Time to first sound at your player: N ms"."""
    page.wait_for_function(
        "() => / \\d+ ms$/.test(document.querySelector('#speak-player').innerText.trim())", timeout=90_000
    )
    return int(page.locator("#speak-player").inner_text().strip().split(": ")[1].split(" ")[0])


def _wait_done(page) -> str:
    page.wait_for_function(
        "() => document.querySelector('#speak-stats').innerText.includes('done')", timeout=90_000
    )
    return page.locator("#speak-stats").inner_text()


def test_page_load_logs_no_warnings(browser, app_url: str) -> None:
    """No warning or error in the console on load (the "Method not implemented." ones come from Gradio's
    upload progress bar, once per finished upload, not from loading the page)."""
    page = browser.new_page()
    messages: list[str] = []
    page.on("console", lambda msg: messages.append(f"{msg.type}: {msg.text}"))
    try:
        page.goto(app_url, wait_until="networkidle", timeout=60_000)
        page.wait_for_timeout(500)
        assert not [m for m in messages if m.startswith(("warning", "error"))], messages
        assert not [m for m in messages if "Method not implemented" in m]
    finally:
        page.close()


def test_speak_tab_plays_streamed_speech(browser, app_url: str, tmp_path: Path) -> None:
    """The figure the page reports is the click-to-sound time at the player, as the test measures it."""
    page = browser.new_page()
    try:
        page.goto(app_url, wait_until="networkidle", timeout=60_000)
        assert page.locator("#speak-player").inner_text().strip().endswith("–")
        page.get_by_label("Text").fill("Hello there. This is accelerando speaking.")
        page.evaluate(_CLICK_AND_TIME)
        page.wait_for_function("() => window.testTiming.sound !== undefined", timeout=90_000)
        measured = page.evaluate("window.testTiming.sound - window.testTiming.start")
        reported = _player_ms(page)
        page.wait_for_function(_PLAYED, arg="#speak-audio", timeout=90_000)
        stats = _wait_done(page)
        print(f"time to first sound: reported {reported} ms, measured by the test {measured:.0f} ms; {stats}")
        assert abs(reported - measured) <= max(300.0, 0.25 * measured)
        assert "first audio computed on the server after" in stats and "RTF" in stats
        _save(page, tmp_path, "speak.png")
    finally:
        page.close()


def test_speak_error_replaces_the_previous_figures(browser, app_url: str) -> None:
    page = browser.new_page()
    try:
        page.goto(app_url, wait_until="networkidle", timeout=60_000)
        page.get_by_label("Text").fill("Hello.")
        page.locator("#speak-button").click()
        _player_ms(page)
        _wait_done(page)
        page.get_by_label("Text").fill("")
        page.locator("#speak-button").click()
        page.get_by_text("Please type some text to speak.").first.wait_for(timeout=30_000)
        page.wait_for_function(
            "() => document.querySelector('#speak-stats').innerText.includes('failed')", timeout=30_000
        )
        stats = page.locator("#speak-stats").inner_text()
        assert re.search(r"\d+ ms", stats) is None and "RTF" not in stats and "done" not in stats
        assert page.locator("#speak-player").inner_text().strip().endswith("–")
    finally:
        page.close()


def test_notes_tab_draws_a_note(browser, app_url: str, tmp_path: Path) -> None:
    page = browser.new_page()
    try:
        page.goto(app_url, wait_until="networkidle", timeout=60_000)
        page.get_by_role("tab", name="Notes").click()
        page.locator("#notes-button").click()
        page.wait_for_function(
            "() => document.querySelector('#notes-summary') && "
            "document.querySelector('#notes-summary').innerText.includes('plain run')",
            timeout=90_000,
        )
        assert page.locator("#notes-audio audio").count() >= 1
        _save(page, tmp_path, "notes.png")
    finally:
        page.close()


def test_vocode_tab_shows_boxes_only_for_ticked_vocoders(browser, app_url: str, tone: Path, tmp_path) -> None:
    """On a CPU the many-step variants are not ticked by default: their boxes are hidden, not left empty,
    and ticking one shows them."""
    page = browser.new_page()
    try:
        page.goto(app_url, wait_until="networkidle", timeout=60_000)
        page.get_by_role("tab", name="Vocode").click()
        page.locator("#vocode-source input[type=file]").set_input_files(str(tone))
        page.wait_for_function(
            "() => document.querySelector('#vocode-source audio, #vocode-source .waveform-container') !== null",
            timeout=60_000,
        )
        page.locator("#vocode-button").click()
        page.wait_for_function(
            "() => document.querySelector('#vocode-summary') && "
            "document.querySelector('#vocode-summary').innerText.includes('Vocoded')",
            timeout=120_000,
        )
        assert not page.locator("#vocode-audio-0").is_visible()  # FreGrad (50 steps): not ticked
        assert not page.locator("#vocode-image-0").is_visible()
        ran = [i for i in range(7) if page.locator(f"#vocode-audio-{i}").is_visible()]
        assert len(ran) >= 2 and 0 not in ran  # the ticked ones show their audio
        _save(page, tmp_path, "vocode.png")
        page.get_by_label("FreGrad (50 steps)").check()
        page.locator("#vocode-audio-0").wait_for(state="visible", timeout=30_000)
    finally:
        page.close()
