"""report.html: the render for a person to look at, one self-contained page.

It reads report.json's content and names the output folder's own files by relative paths
(anchor.png, frames/, masks/, heatmaps/, clip.mp4), so the folder can be moved or zipped
whole; no script, no network. Thumbnails load lazily, so a render of 500 frames opens
as fast as one of five. Sections, top to bottom: the settings and the checks' verdict,
the clip, a chart of background MSE per frame with the check's limit, the heat-map
scale, then the anchor and every frame (image, heat-map, masks, prompt with its delta
against the anchor's, hold, rules, MSEs, pass or fail).
"""

from __future__ import annotations

import difflib
import re
from html import escape
from pathlib import Path

from .chart import Chart
from .review import HEAT_MAX, HEAT_STOPS, UNMEASURED

PAGE_END = "</div></body></html>\n"
GENERATOR = "framegen"  # <meta name="generator" content="framegen X">: how framegen knows its own page
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d232a; background: #f6f7f9; }
h1 { margin: 0 0 .5rem; font-size: 1.4rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
dl.settings { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: 0; }
dl.settings dt { color: #5b6570; }
dl.settings dd { margin: 0; font-family: ui-monospace, monospace; }
.verdict { display: inline-block; padding: .3rem .7rem; border-radius: 4px; font-weight: 600; margin: .7rem 0; }
.verdict.pass, .badge.pass { background: #d7f2dd; color: #14591f; }
.verdict.fail, .badge.fail { background: #fbd9d6; color: #8a1a10; }
.verdict.none, .badge.none { background: #e4e7eb; color: #3e4852; }
video { max-width: 100%; background: #000; image-rendering: pixelated; }
svg.chart { background: #fff; border: 1px solid #d5dae0; max-width: 100%; height: auto; }
svg.chart .bar.pass { fill: #4f8fd6; }
svg.chart .bar.fail { fill: #d6453a; }
svg.chart .bar.none { fill: #9aa4ae; }
svg.chart .limit { stroke: #d6453a; stroke-width: 2; stroke-dasharray: 6 4; }
svg.chart .flicker { fill: none; stroke: #e0a030; stroke-width: 2; }
svg.chart .flicker-limit { stroke: #e0a030; }
svg.chart text { font: 11px system-ui, sans-serif; fill: #3e4852; }
.scale { display: flex; align-items: center; gap: .6rem; flex-wrap: wrap; }
.ramp { width: 240px; height: 14px; border: 1px solid #aab3bc; }
.swatch { display: inline-block; width: 14px; height: 14px; vertical-align: middle; border: 1px solid #aab3bc; }
.frames { display: flex; flex-direction: column; gap: .6rem; }
.frame { display: grid; grid-template-columns: auto 1fr; gap: 1rem; background: #fff; padding: .7rem;
         border: 1px solid #d5dae0; border-left: 6px solid #d5dae0; border-radius: 4px; }
.frame.pass { border-left-color: #3fa35a; }
.frame.fail { border-left-color: #d6453a; background: #fff6f5; }
.images { display: flex; gap: .5rem; align-items: flex-start; }
figure { margin: 0; text-align: center; font-size: 11px; color: #5b6570; }
figure img { display: block; width: 128px; height: auto; image-rendering: pixelated; background: #e4e7eb;
             border: 1px solid #aab3bc; }
.frame h3 { margin: 0 0 .3rem; font-size: 1rem; }
.badge { font-size: 11px; padding: .1rem .4rem; border-radius: 3px; margin-left: .4rem; vertical-align: middle; }
.prompt { font-family: ui-monospace, monospace; margin: .2rem 0; }
.prompt ins { background: #c8f0cf; text-decoration: none; }
.prompt del { background: #f7cdc9; }
.facts { color: #3e4852; margin: .2rem 0; }
nav.pages { margin: .5rem 0; line-height: 1.8; }
.rules { margin: .2rem 0; padding-left: 1.2rem; font-family: ui-monospace, monospace; font-size: 12px; }
"""


def report_limits(report: dict) -> dict[str, float]:
    """Each check's limit by its name."""
    return {check["name"]: check["limit"] for check in report["checks"]}


def is_report_page(text: str) -> bool:
    """Whether `text` is a report.html that framegen wrote."""
    return text.startswith("<!doctype html>") and f'<meta name="generator" content="{GENERATOR} ' in text[:400]


def page_head(report: dict, failing: set[str], seconds: float, chart: Chart, reference: str, nav: str = "") -> str:
    """The page down to its frames: settings, verdict, clip, chart, links to the further
    pages (`nav`), heat-map scale, anchor."""
    render = report["storyboard"]["resolved"]["render"]
    limits = report_limits(report)
    name = Path(report["storyboard"]["path"]).stem
    settings = {
        "storyboard": report["storyboard"]["path"],
        "model": f"{report['model']['id']} ({report['model']['dtype']}, {report['model']['device']})",
        "size": f"{report['storyboard']['width']}x{report['storyboard']['height']}",
        "steps": render["steps"],
        "guidance": render["guidance"],
        "seed": render["seed"],
        "cache": f"{render['cache']}, {report['cache_bytes']:,} bytes, anchor {report['anchor_cache']}",
        "timings": f"anchor {report['anchor']['seconds']} s, frames {seconds:.1f} s rendered now",
        "segmenter": report["segmenter"],
        "framegen": report["framegen_version"],
    }
    parts = [
        html_head(report, name),
        f"<header><h1>{escape(name)}</h1>",
        '<dl class="settings">',
        *(f"<dt>{key}</dt><dd>{escape(str(value))}</dd>" for key, value in settings.items()),
        "</dl>",
        verdict(report, failing),
        "</header>",
        "<h2>Clip</h2>",
        f'<video controls preload="metadata" width="{max(256, report["storyboard"]["width"])}">'
        f'<source src="{escape(report["video"]["path"])}" type="video/mp4"></video>',
        f"<p class=facts>{report['video']['frame_count']} video frames at {report['video']['fps']} fps</p>",
        "<h2>Background MSE per frame, and flicker</h2>",
        chart.svg(limits.get("max_background_mse"), limits.get("max_flicker")),
        "<h2>Frames</h2>",
        nav,
        heat_scale(reference),
        '<div class="frames">',
        anchor_entry(report),
    ]
    return "\n".join(parts) + "\n"


def html_head(report: dict, title: str) -> str:
    """A page's start, down to its <body>: framegen's generator mark, the title, the style."""
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta name="generator" content="{GENERATOR} {escape(report["framegen_version"])}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>framegen: {escape(title)}</title><style>{STYLE}</style></head><body>",
    ])  # fmt: skip


def verdict(report: dict, failing: set[str]) -> str:
    if not report["checks"]:
        return '<p class="verdict none">no checks set (checks.max_background_mse, checks.max_flicker)</p>'
    if failing:
        names = ", ".join(sorted(failing)[:20]) + (f" and {len(failing) - 20} more" if len(failing) > 20 else "")
        return f'<p class="verdict fail">check failed on {len(failing)} frame(s): {escape(names)}</p>'
    limits = ", ".join(f"{c['name']} {c['limit']}" for c in report["checks"])
    return f'<p class="verdict pass">every frame passes {escape(limits)}</p>'


def heat_scale(reference: str = "the anchor") -> str:
    stops = ", ".join(f"rgb({r:.0f},{g:.0f},{b:.0f})" for r, g, b in HEAT_STOPS)
    return (
        f'<div class="scale"><span>heat-maps: per-pixel RMS difference from {reference} (0-255 scale), '
        "background only</span>"
        f'<span>0</span><div class="ramp" style="background: linear-gradient(to right, {stops})"></div>'
        f"<span>{HEAT_MAX:g} or more</span>"
        f'<span><span class="swatch" style="background: rgb{UNMEASURED}"></span> person: not measured</span></div>'
    )


def figure(src: str, caption: str, alt: str) -> str:
    return (
        f'<figure><img loading="lazy" decoding="async" src="{escape(src)}" alt="{escape(alt)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def anchor_entry(report: dict) -> str:
    anchor = report["anchor"]
    facts = f"{anchor['seconds']} s"
    if "psnr" in anchor:
        facts += f", reconstruction PSNR {anchor['psnr']:.2f} dB"
    return (
        '<article class="frame anchor" id="anchor"><div class="images">'
        f"{figure(anchor['image'], 'anchor', 'the anchor')}</div>"
        f'<div><h3>anchor</h3><p class="prompt">{escape(anchor["prompt"])}</p><p class="facts">{facts}</p></div>'
        "</article>"
    )


def frame_entry(frame: dict, state: str, anchor_prompt: str, limit, reference: str = "the anchor") -> str:
    name = frame["name"]
    images = [figure(frame["image"], "frame", name)]
    if frame.get("heatmap"):
        images.append(figure(frame["heatmap"], "heat-map", f"{name}: drift from {reference}"))
    images += [figure(m["image"], f"mask: {m['kind']}", f"{name}: {m['kind']} mask") for m in frame["masks"]]
    bg, fg, flicker = frame["background_mse"], frame["foreground_mse"], frame.get("flicker")
    facts = [
        f"background MSE {'-' if bg is None else f'{bg:.2f}'}" + (f" (limit {limit})" if limit is not None else ""),
        f"foreground MSE {'-' if fg is None else f'{fg:.2f}'}",
        f"flicker {'-' if flicker is None else f'{flicker:.2f}'}",
        f"background {frame['background_fraction']:.0%} of the image",
        f"hold {frame['hold']}",
        *([", ".join(f"LoRA {name} {scale:g}" for name, scale in frame["lora"].items())] if frame.get("lora") else []),
        f"{frame['seconds']} s" + (", reused" if frame.get("reused") else ""),
    ]
    if "tween_of" in frame:
        k, n = frame["tween"]
        facts.insert(0, f"in-between {k} of {n} before {frame['tween_of']}")
    badge = {"pass": "pass", "fail": "FAIL", "none": "no check"}[state]
    return (
        f'<article class="frame {state}" id="frame-{escape(name)}" data-status="{state}">'
        f'<div class="images">{"".join(images)}</div><div>'
        f'<h3>{escape(name)}<span class="badge {state}">{badge}</span></h3>'
        f'<p class="prompt">{prompt_delta(anchor_prompt, frame["prompt"])}</p>'
        f'<p class="facts">{escape(" · ".join(facts))}</p>'
        f'<ul class="rules">{"".join(f"<li>{escape(short_rule(rule))}</li>" for rule in frame["rules"])}</ul>'
        "</div></article>"
    )


WORDS = re.compile(r"[^\s,]+|,")


def prompt_delta(anchor: str, prompt: str) -> str:
    """The frame's prompt with the words it adds marked <ins> and the anchor's words it
    drops marked <del>, word by word (commas count as words; spacing is normalised)."""
    a, b = WORDS.findall(anchor), WORDS.findall(prompt)
    out: list[str] = []

    def words(tokens: list[str], tag: str | None = None) -> None:
        if not tokens:
            return
        space = " " if out and tokens[0] != "," else ""
        text = escape("".join(t if t == "," or i == 0 else " " + t for i, t in enumerate(tokens)))
        out.append(space + (f"<{tag}>{text}</{tag}>" if tag else text))

    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            words(b[j1:j2])
        else:
            words(a[i1:i2], "del")
            words(b[j1:j2], "ins")
    return "".join(out).replace("</del> <ins>", "</del><ins>")


def short_rule(rule: dict) -> str:
    """A resolved rule in one line: `mask OUT3,OUT4 @ steps 21-50 (auto: attention)`."""
    text = f"{rule['mode']} {','.join(rule['layers'])} @ steps {rule['steps']}"
    if rule["mode"] == "threshold":
        text += f" (< {rule['threshold']}{' relative' if rule.get('relative') else ''}, per {rule['reduce']})"
    if rule.get("mask"):  # mask rules, and kv rules inside a mask
        mask = rule["mask"]
        text += " (" + ", ".join(f"{key}: {value}" for key, value in mask.items() if value is not None) + ")"
    return text if len(text) <= 160 else text[:159] + "…"
