"""Procedural scenes the `demo` model is trained on: one person in front of a simple landscape.

Deterministic from a seed, numpy/PIL only. `sample_attributes(seed)` picks everything
(words and placements); `draw_scene(attributes)` draws it, so the same scene can be
re-drawn with one attribute changed:

    attrs = sample_attributes(3)
    a = draw_scene(attrs)
    b = draw_scene({**attrs, "top_colour": "blue"})   # same place, same pose, blue shirt

Captions use the paper's tag style, e.g.
`girl, white hair, red shirt, blue skirt, grass, sunset, house, tree`: the person's tags
come first in a fixed order, the background tags (ground, sky, scenery) follow in a
seed-shuffled order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

PEOPLE = ("girl", "boy")
COLOURS = ("red", "blue", "green", "yellow", "white", "black", "pink", "purple", "orange", "brown", "gray")
HAIR_COLOURS = ("white", "black", "brown", "blonde", "red")
BOTTOMS = ("skirt", "pants", "shorts")
SKIES = ("day", "sunset", "night")
GROUNDS = ("grass", "sand", "snow")
SCENERY = ("house", "tree", "rocks", "clouds", "sun", "moon")
MAX_SCENERY = 4  # keeps every caption within the text encoder's 32 tokens

# Every word a caption can contain (each is one token of the demo tokenizer).
GRAMMAR_WORDS = tuple(
    dict.fromkeys(PEOPLE + COLOURS + HAIR_COLOURS + ("hair", "shirt") + BOTTOMS + SKIES + GROUNDS + SCENERY)
)

RGB = {
    "red": (220, 30, 30),
    "blue": (30, 70, 230),
    "green": (30, 170, 50),
    "yellow": (245, 225, 30),
    "white": (248, 248, 248),
    "black": (20, 20, 20),
    "pink": (255, 140, 195),
    "purple": (140, 40, 185),
    "orange": (255, 140, 20),
    "brown": (125, 70, 25),
    "gray": (128, 128, 128),
}
HAIR_RGB = {
    "white": (240, 240, 240),
    "black": (15, 15, 15),
    "brown": (105, 55, 20),
    "blonde": (245, 210, 90),
    "red": (205, 50, 20),
}
SKY_RGB = {  # (top, horizon)
    "day": ((70, 140, 235), (170, 215, 255)),
    "sunset": ((120, 60, 140), (255, 150, 70)),
    "night": ((5, 10, 35), (30, 40, 90)),
}
GROUND_RGB = {
    "grass": ((60, 150, 40), (40, 110, 30)),
    "sand": ((225, 195, 130), (200, 170, 105)),
    "snow": ((235, 240, 250), (205, 215, 235)),
}
SKIN = (240, 195, 160)
SHOES = (50, 35, 30)
SS = 4  # draw at 4x and downsample: crisp but anti-aliased edges


@dataclass
class Scene:
    image: Image.Image  # RGB
    caption: str
    person_mask: np.ndarray  # bool HxW
    top_mask: np.ndarray  # bool HxW, shirt pixels
    bottom_mask: np.ndarray  # bool HxW, skirt / pants / shorts pixels
    attributes: dict = field(default_factory=dict)


def sample_attributes(seed: int) -> dict:
    """Everything a scene depends on, as plain JSON-able values."""
    rng = random.Random(seed)
    sky = rng.choice(SKIES)
    options = ["house", "tree", "rocks", "clouds", "moon" if sky == "night" else "sun"]
    scenery = [s for s in options if rng.random() < 0.45][:MAX_SCENERY]
    height = rng.uniform(0.38, 0.62)  # person height, fraction of image height
    return {
        "person": rng.choice(PEOPLE),
        "hair_colour": rng.choice(HAIR_COLOURS),
        "top_colour": rng.choice(COLOURS),
        "bottom_colour": rng.choice(COLOURS),
        "bottom": rng.choice(BOTTOMS),
        "sky": sky,
        "ground": rng.choice(GROUNDS),
        "scenery": scenery,
        "horizon": rng.uniform(0.5, 0.68),  # fraction of image height
        "person_x": rng.uniform(0.2, 0.8),  # centre, fraction of width
        "person_height": height,
        "person_foot": rng.uniform(0.8, 0.97),  # feet, fraction of height
        "house_x": rng.uniform(0.0, 1.0),
        "tree_x": rng.uniform(0.0, 1.0),
        "rocks_x": rng.uniform(0.0, 1.0),
        "clouds_x": rng.uniform(0.0, 1.0),
        "light_x": rng.uniform(0.1, 0.9),  # sun or moon
        "light_y": rng.uniform(0.08, 0.3),
        "caption_seed": rng.randrange(2**31),
    }


def caption(attributes: dict) -> str:
    a = attributes
    person = [
        a["person"],
        f"{a['hair_colour']} hair",
        f"{a['top_colour']} shirt",
        f"{a['bottom_colour']} {a['bottom']}",
    ]
    background = [a["ground"], a["sky"], *a["scenery"]]
    random.Random(a["caption_seed"]).shuffle(background)
    return ", ".join(person + background)


def _gradient(draw: ImageDraw.ImageDraw, box, top, bottom):
    x0, y0, x1, y1 = box
    for y in range(int(y0), int(y1)):
        t = (y - y0) / max(y1 - y0 - 1, 1)
        colour = tuple(int(round(c0 + (c1 - c0) * t)) for c0, c1 in zip(top, bottom))
        draw.line([(x0, y), (x1, y)], fill=colour)


def _draw_background(draw: ImageDraw.ImageDraw, a: dict, W: int, H: int):
    horizon = a["horizon"] * H
    _gradient(draw, (0, 0, W, horizon), *SKY_RGB[a["sky"]])
    _gradient(draw, (0, horizon, W, H), *GROUND_RGB[a["ground"]])
    u = H / 64  # one "pixel" of the 64x64 design grid
    if "sun" in a["scenery"]:
        cx, cy, r = a["light_x"] * W, a["light_y"] * H, 5 * u
        colour = (255, 230, 60) if a["sky"] == "day" else (255, 120, 40)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    if "moon" in a["scenery"]:
        cx, cy, r = a["light_x"] * W, a["light_y"] * H, 4.5 * u
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(240, 240, 200))
        draw.ellipse([cx - r + 3 * u, cy - r - 1 * u, cx + r + 3 * u, cy + r - 1 * u], fill=SKY_RGB["night"][0])
    if "clouds" in a["scenery"]:
        colour = (90, 95, 120) if a["sky"] == "night" else (250, 250, 250)
        cx, cy = a["clouds_x"] * W, 0.18 * H
        for dx, dy, r in ((-6, 1, 4), (0, -1, 5), (6, 1, 4)):
            x, y, rr = cx + dx * u, cy + dy * u, r * u
            draw.ellipse([x - rr, y - rr * 0.8, x + rr, y + rr * 0.8], fill=colour)
    if "house" in a["scenery"]:
        cx, base, w, h = a["house_x"] * W, horizon + 2 * u, 16 * u, 12 * u
        draw.rectangle([cx - w / 2, base - h, cx + w / 2, base], fill=(200, 170, 120))
        draw.polygon(
            [(cx - w / 2 - 2 * u, base - h), (cx + w / 2 + 2 * u, base - h), (cx, base - h - 8 * u)], fill=(160, 40, 30)
        )
        draw.rectangle([cx - 2 * u, base - 6 * u, cx + 2 * u, base], fill=(90, 50, 20))
    if "tree" in a["scenery"]:
        cx, base = a["tree_x"] * W, horizon + 3 * u
        draw.rectangle([cx - 1.5 * u, base - 10 * u, cx + 1.5 * u, base], fill=(100, 60, 25))
        draw.ellipse([cx - 7 * u, base - 24 * u, cx + 7 * u, base - 8 * u], fill=(20, 110, 35))
    if "rocks" in a["scenery"]:
        cx, base = a["rocks_x"] * W, horizon + 0.55 * (H - horizon)
        for dx, w, h in ((-4, 6, 5), (3, 8, 7)):
            x = cx + dx * u
            draw.ellipse([x - w / 2 * u, base - h * u, x + w / 2 * u, base + 1 * u], fill=(110, 110, 115))


def _draw_person(layers: dict, a: dict, W: int, H: int):
    """Draws the person on every layer: `image` in colour, the masks in 255."""
    h = a["person_height"] * H
    cx, foot = a["person_x"] * W, a["person_foot"] * H
    top_y = foot - h
    head_r = 0.12 * h
    head_cy = top_y + head_r
    neck = top_y + 2 * head_r
    waist = neck + 0.33 * h
    torso_w = 0.36 * h
    leg_w = 0.13 * h
    boy = a["person"] == "boy"

    def both(name, shape, *coords, colour):
        for key in ("image", "person", name):
            if key is None or key not in layers:
                continue
            fill = colour if key == "image" else 255
            if shape == "chord":  # upper half of the ellipse in the box
                layers[key].chord(list(coords[0]), 180, 360, fill=fill)
            else:
                getattr(layers[key], shape)(list(coords[0]), fill=fill)

    hair = HAIR_RGB[a["hair_colour"]]
    # long hair behind the girl's shoulders
    if not boy:
        both(None, "rectangle", (cx - head_r * 1.15, head_cy, cx + head_r * 1.15, neck + 0.12 * h), colour=hair)
    # legs / bottom
    bottom, bc = a["bottom"], RGB[a["bottom_colour"]]
    both(
        None, "rectangle", (cx - torso_w / 2 + 0.02 * h, waist, cx - torso_w / 2 + 0.02 * h + leg_w, foot), colour=SKIN
    )
    both(
        None, "rectangle", (cx + torso_w / 2 - 0.02 * h - leg_w, waist, cx + torso_w / 2 - 0.02 * h, foot), colour=SKIN
    )
    if bottom == "pants":
        both("bottom", "rectangle", (cx - torso_w / 2, waist, cx - 0.01 * h, foot - 0.04 * h), colour=bc)
        both("bottom", "rectangle", (cx + 0.01 * h, waist, cx + torso_w / 2, foot - 0.04 * h), colour=bc)
        both("bottom", "rectangle", (cx - torso_w / 2, waist, cx + torso_w / 2, waist + 0.08 * h), colour=bc)
    elif bottom == "shorts":
        both("bottom", "rectangle", (cx - torso_w / 2, waist, cx + torso_w / 2, waist + 0.17 * h), colour=bc)
    else:  # skirt: a wide trapezoid
        flare = 0.14 * h
        both(
            "bottom",
            "polygon",
            [
                (cx - torso_w / 2, waist),
                (cx + torso_w / 2, waist),
                (cx + torso_w / 2 + flare, waist + 0.26 * h),
                (cx - torso_w / 2 - flare, waist + 0.26 * h),
            ],
            colour=bc,
        )
    # shoes
    both(None, "rectangle", (cx - torso_w / 2 - 0.02 * h, foot - 0.04 * h, cx - 0.02 * h, foot), colour=SHOES)
    both(None, "rectangle", (cx + 0.02 * h, foot - 0.04 * h, cx + torso_w / 2 + 0.02 * h, foot), colour=SHOES)
    # shirt with sleeves, hands
    tc = RGB[a["top_colour"]]
    arm_w = 0.1 * h
    both(
        None, "rectangle", (cx - torso_w / 2 - arm_w, waist - 0.02 * h, cx - torso_w / 2, waist + 0.04 * h), colour=SKIN
    )
    both(
        None, "rectangle", (cx + torso_w / 2, waist - 0.02 * h, cx + torso_w / 2 + arm_w, waist + 0.04 * h), colour=SKIN
    )
    both("top", "rectangle", (cx - torso_w / 2 - arm_w, neck, cx + torso_w / 2 + arm_w, neck + 0.12 * h), colour=tc)
    both("top", "rectangle", (cx - torso_w / 2 - arm_w, neck, cx - torso_w / 2, waist - 0.02 * h), colour=tc)
    both("top", "rectangle", (cx + torso_w / 2, neck, cx + torso_w / 2 + arm_w, waist - 0.02 * h), colour=tc)
    both("top", "rectangle", (cx - torso_w / 2, neck, cx + torso_w / 2, waist), colour=tc)
    # head and hair on top
    both(None, "ellipse", (cx - head_r, head_cy - head_r, cx + head_r, head_cy + head_r), colour=SKIN)
    if boy:
        both(
            None,
            "chord",
            (cx - head_r * 1.08, head_cy - head_r * 1.12, cx + head_r * 1.08, head_cy + head_r * 0.6),
            colour=hair,
        )
    else:
        both(
            None,
            "chord",
            (cx - head_r * 1.15, head_cy - head_r * 1.15, cx + head_r * 1.15, head_cy + head_r * 0.9),
            colour=hair,
        )
    # eyes
    eye = max(0.025 * h, 1)
    for dx in (-0.4, 0.4):
        ex, ey = cx + dx * head_r, head_cy + 0.25 * head_r
        layers["image"].ellipse([ex - eye / 2, ey - eye / 2, ex + eye / 2, ey + eye / 2], fill=(30, 30, 30))


def draw_scene(attributes: dict, size=(64, 64)) -> Scene:
    W, H = size[0] * SS, size[1] * SS
    image = Image.new("RGB", (W, H))
    masks = {k: Image.new("L", (W, H), 0) for k in ("person", "top", "bottom")}
    layers = {"image": ImageDraw.Draw(image), **{k: ImageDraw.Draw(m) for k, m in masks.items()}}
    _draw_background(layers["image"], attributes, W, H)
    _draw_person(layers, attributes, W, H)
    # the shirt covers the top of the bottom garment: a pixel belongs to the last garment drawn
    small = {k: np.asarray(m.resize(size, Image.Resampling.BOX)) > 127 for k, m in masks.items()}
    small["bottom"] &= ~small["top"]
    return Scene(
        image=image.resize(size, Image.Resampling.BOX),
        caption=caption(attributes),
        person_mask=small["person"],
        top_mask=small["top"],
        bottom_mask=small["bottom"],
        attributes=dict(attributes),
    )


def make_scene(seed: int, size=(64, 64)) -> Scene:
    return draw_scene(sample_attributes(seed), size)
