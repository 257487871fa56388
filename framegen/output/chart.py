"""The page's chart: background MSE per frame as bars, flicker as a line, the checks'
limits as dashed lines; an inline SVG, gathered one frame at a time."""

from __future__ import annotations

from html import escape

MAX_BARS = 500  # a longer clip's chart shows runs of frames, each bar their worst
STATES = ["none", "pass", "fail"]  # a bar of several frames takes the last of its frames' states here


class Chart:
    """One bar per frame (its background MSE) and a line through each frame's flicker (its
    change from the video frame before), each check's limit as a dashed line. A clip of
    more than MAX_BARS frames gets MAX_BARS bars, each the worst of a run of frames (failing
    if any of them fails), so its chart stays a picture and its memory a few hundred bars."""

    def __init__(self, total: int):
        self.total, self.bars = total, min(total, MAX_BARS)
        self.runs: list[dict] = []  # per bar: first, last, mse, flicker, state
        self.position = 0

    def add(self, frame: dict, state: str) -> None:
        bar, self.position = self.position * self.bars // self.total, self.position + 1
        if bar == len(self.runs):
            self.runs.append({"first": frame["name"], "mse": None, "flicker": None, "state": state})
        run = self.runs[bar]
        run["last"] = frame["name"]
        for key, value in (("mse", frame["background_mse"]), ("flicker", frame.get("flicker"))):
            if value is not None:
                run[key] = value if run[key] is None else max(run[key], value)
        run["state"] = max(run["state"], state, key=STATES.index)

    def svg(self, limit: float | None, flicker_limit: float | None = None) -> str:
        runs = self.runs
        values = [run["mse"] for run in runs] + [run["flicker"] for run in runs] + [limit, flicker_limit]
        top = max([v for v in values if v is not None] + [1e-9]) * 1.1
        ticks = [f"{tick:.3g}" for tick in (0, top / 2 / 1.1, top / 1.1)]
        left = max(48, 10 + 7 * max(len(tick) for tick in ticks))  # room for "1.11e+04"
        bar, gap, height, bottom = max(2, min(80, 700 // max(1, len(runs)))), 1, 200, 20
        width, full = max(760, left + len(runs) * (bar + gap) + 10), height + bottom + 10  # 760: the legend's line
        label = "background MSE and flicker per frame"
        out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{full}" '
               f'viewBox="0 0 {width} {full}" role="img" aria-label="{label}">']  # fmt: skip
        for tick, label in zip((0, top / 2 / 1.1, top / 1.1), ticks):
            y = 10 + height - tick / top * height
            out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
        for i, run in enumerate(runs):
            x, value = left + i * (bar + gap), run["mse"]
            h = 0 if value is None else value / top * height
            names = run["first"] if run["first"] == run["last"] else f"{run['first']} to {run['last']}, worst"
            shown = "no shared background" if value is None else f"{value:.2f}"
            out.append(
                f'<rect class="bar {run["state"]}" x="{x}" y="{10 + height - h:.1f}" width="{bar}" '
                f'height="{max(h, 0.5):.1f}"><title>{escape(names)}: {shown}</title></rect>'
            )
        points = [f"{left + i * (bar + gap) + bar / 2:.1f},{10 + height - run['flicker'] / top * height:.1f}"
                  for i, run in enumerate(runs) if run["flicker"] is not None]  # fmt: skip
        if points:
            out.append(f'<polyline class="flicker" points="{" ".join(points)}"><title>flicker</title></polyline>')
        for name, value, css in (("limit", limit, "limit"), ("flicker limit", flicker_limit, "limit flicker-limit")):
            if value is None:
                continue
            y = 10 + height - value / top * height
            out.append(f'<line class="{css}" x1="{left}" x2="{width - 5}" y1="{y:.1f}" y2="{y:.1f}">'
                       f"<title>{name} {value}</title></line>")  # fmt: skip
            out.append(f'<text x="{width - 6}" y="{y - 4:.1f}" text-anchor="end">{name} {value}</text>')  # off the bars
        per_bar = "" if len(runs) == self.total else f", {self.total / len(runs):.3g} per bar (its worst)"
        legend = "bars: background MSE against the anchor; line: flicker, the change from the video frame before"
        out.append(f'<text x="{left}" y="{height + bottom + 5}">frames 1-{self.total}{per_bar}, in video order. '
                   f"{legend}</text>")  # fmt: skip
        out.append("</svg>")
        return "".join(out)
