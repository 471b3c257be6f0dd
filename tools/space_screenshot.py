"""Open the app served from the Space image in Debian's headless Chromium and photograph Home.

Usage: space_screenshot.py URL PNG  (tools/space_image.sh calls it once the health check answers).
Exits 1 with one line if the page does not come up or shows a Streamlit exception.
"""
from __future__ import annotations

import sys

from playwright.sync_api import Error, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTH, MAX_HEIGHT = 1400, 2400
# Streamlit's 'running' icon and greyed-out (stale) elements: present while a script run is under way.
SETTLED_JS = ("() => !document.querySelector('[data-testid=\"stStatusWidget\"] "
              "[data-testid=\"stStatusWidgetRunningIcon\"]') && !document.querySelector('[data-stale=\"true\"]')")


def photograph(url: str, path: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.goto(url, timeout=120_000)
            page.wait_for_selector('[data-testid="stApp"]', timeout=120_000)
            page.get_by_text("Runs on disk").wait_for(timeout=120_000)  # Home has listed the runs
            page.wait_for_function(SETTLED_JS, timeout=120_000)
            # Elements whose code loads lazily: the runs table (drawn on a canvas) and the page links.
            page.wait_for_selector('[data-testid="stMain"] [data-testid="stDataFrame"] canvas', timeout=60_000)
            page.locator('[data-testid="stMain"] [data-testid="stPageLink"]').filter(has_text="Train").wait_for(
                timeout=60_000)
            errors = page.locator('[data-testid="stException"]')
            if errors.count():
                raise SystemExit(f"error: the app shows an exception: {errors.first.inner_text()[:300]}")
            # Streamlit scrolls inside its own container: make the window as tall as the page.
            height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
            page.set_viewport_size({"width": WIDTH, "height": max(900, min(MAX_HEIGHT, int(height) + 40))})
            page.wait_for_timeout(800)  # the table re-lays out to the new size
            page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
            page.wait_for_function(SETTLED_JS, timeout=60_000)  # the sidebar's job list refreshes itself
            page.screenshot(path=path)
        finally:
            browser.close()


def main() -> None:
    url, path = sys.argv[1:3]
    try:
        photograph(url, path)
    except Error as e:  # Playwright's timeouts and navigation failures
        raise SystemExit(f"error: {url} did not show the app in Chromium: {e.message.splitlines()[0]}")
    print(f"Chromium opened {url}; screenshot saved to {path}")


if __name__ == "__main__":
    main()
