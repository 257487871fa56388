"""Control images for a walk: the demo scene's person, as a white silhouette on black,
at evenly spaced places from left to right (what `demo-control` was trained on).

    python -m tools.demo.walk --seed 60000101 --keyframes 8 --out storyboards/demo-walk

writes OUT/0000.png (the anchor's place) .. OUT/NNNN.png and prints the scene's caption.
That command (the defaults) draws storyboards/demo-walk/ as shipped, byte for byte; its
caption is the storyboard's anchor prompt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from .scenes import draw_scene, sample_attributes
from .train_controlnet import silhouette

START, END = 0.2, 0.8  # person_x, fraction of the width: the grammar's range


def path_positions(keyframes: int) -> list[float]:
    """person_x of the anchor and of each keyframe, evenly from START to END."""
    return [START + (END - START) * i / keyframes for i in range(keyframes + 1)]


def walk(seed: int, keyframes: int) -> tuple[str, list, list]:
    """(caption, the silhouettes as PIL images, the scenes) along the path."""
    attributes = sample_attributes(seed)
    scenes = [draw_scene({**attributes, "person_x": x}) for x in path_positions(keyframes)]
    return scenes[0].caption, [Image.fromarray(silhouette(s.person_mask)) for s in scenes], scenes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=60_000_101)  # the shipped walk's scene
    parser.add_argument("--keyframes", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    caption, images, _ = walk(args.seed, args.keyframes)
    args.out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        image.save(args.out / f"{i:04d}.png")
    print(caption)


if __name__ == "__main__":
    main()
