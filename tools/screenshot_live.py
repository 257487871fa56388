"""The picture of the live page (docs/guides/output.md) mid-render: `render --watch` on a copy of the demo
storyboard, its page open in headless Chromium (Debian's `chromium`), one save (a frame's
skirt turns pink), and a screenshot while that frame renders.

    python tools/screenshot_live.py docs/live-page.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.watch_latency import watching_demo  # noqa: E402
from tests.test_review import CHROMIUM_FLAGS, chromium  # noqa: E402


def main() -> None:
    from playwright.sync_api import sync_playwright

    target = Path(sys.argv[1])
    with watching_demo(8767, "live-page-") as (board, spec), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto("http://127.0.0.1:8767/", wait_until="load")
        spec["frames"][-1]["replace"] = {"blue skirt": "pink skirt"}
        board.write_text(yaml.safe_dump(spec, sort_keys=False))
        page.wait_for_function(  # the shot's name is on the bar once its pass begins
            "document.getElementById('framegen-live').textContent.startsWith('rendering threshold')"
        )
        page.screenshot(path=str(target))
        browser.close()
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
