"""The README's first picture: the demo storyboard's anchor, an arrow, its frames, and the
report's chart beneath them, as one screenshot in headless Chromium (Debian's `chromium`).

    python tools/overview_picture.py docs/overview.png

Renders storyboards/demo.yaml into a temporary folder first (about 15 s on 2 CPU cores).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from framegen.cli import main as framegen  # noqa: E402
from framegen.output.page import STYLE  # noqa: E402
from tests.test_review import CHROMIUM_FLAGS, chromium  # noqa: E402

SHOWN = 4  # frames beside the anchor; the chart shows them all


def tile(src: Path, caption: str) -> str:
    return f'<figure><img src="{src.as_uri()}"><figcaption>{caption}</figcaption></figure>'


def overview_html(out: Path) -> str:
    report = json.loads((out / "report.json").read_text())
    chart = re.search(r"<svg class=\"chart\".*?</svg>", (out / "report.html").read_text(), re.S).group(0)
    frames = [tile(out / f["image"], f"{f['name']}<br>MSE {f['background_mse']:.0f}")
              for f in report["frames"][:SHOWN]]  # fmt: skip
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>{STYLE}
body {{ margin: 16px; background: #fff; }}
.row {{ display: flex; align-items: center; gap: 12px; }}
figure {{ margin: 0; width: 128px; text-align: center; font: 13px system-ui, sans-serif; }}
img {{ width: 128px; height: 128px; display: block; }}
.arrow {{ font: 40px system-ui, sans-serif; color: #3e4852; }}
</style></head><body>
<div class="row">{tile(out / "anchor.png", "anchor<br>&nbsp;")}<span class="arrow">&rarr;</span>{"".join(frames)}
<span class="arrow">&hellip;</span></div>
<div style="margin-top: 12px">{chart}</div></body></html>"""


def main() -> None:
    from playwright.sync_api import sync_playwright

    target = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory(prefix="framegen-overview-") as folder:
        out = Path(folder) / "demo"
        if framegen(["render", str(ROOT / "storyboards" / "demo.yaml"), "-o", str(out), "-q"]) != 0:
            raise SystemExit("the demo render failed")
        page_file = Path(folder) / "overview.html"
        page_file.write_text(overview_html(out))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 900, "height": 200})
            page.goto(page_file.as_uri(), wait_until="load")
            page.locator("body").screenshot(path=str(target))
            browser.close()
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
