"""What framegen may replace in an output folder: only files whose bytes are what framegen
wrote there (the folder's record, framegen-files.jsonl), never a file because it carries
framegen's marks. A folder written by 0.2 (marks, no record) is taken over once, checked."""

import json
import shutil

import imageio_ffmpeg
import numpy as np
import pytest
import yaml
from PIL import Image

from framegen.cli import main
from framegen.output.files import CLIP_MARK

from .conftest import QUICK_BOARD

BOARD = {**QUICK_BOARD, "frames": [*QUICK_BOARD["frames"], {"name": "green", "add": "green"}]}


@pytest.fixture
def rendered(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(BOARD))
    assert main(["render", "-q", str(path), "-o", str(tmp_path / "out")]) == 0
    return path, tmp_path / "out"


def reencode_flipped(clip):
    """What a user's ffmpeg does: decode, flip, encode again; the comment (framegen's mark) is copied."""
    reader = imageio_ffmpeg.read_frames(str(clip))
    width, height = next(reader)["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(height, width, 3)[:, ::-1].copy() for f in reader]
    target = clip.with_name("flipped.mp4")
    writer = imageio_ffmpeg.write_frames(
        str(target), (width, height), fps=8, macro_block_size=1, output_params=["-metadata", f"comment={CLIP_MARK}"]
    )
    writer.send(None)
    for frame in frames:
        writer.send(frame)
    writer.close()
    target.replace(clip)
    assert CLIP_MARK.encode() in clip.read_bytes()


def test_every_file_written_is_in_the_record(rendered):
    _, out = rendered
    names = {json.loads(line)["path"] for line in (out / "framegen-files.jsonl").read_text().splitlines()}
    assert {"anchor.png", "clip.mp4", "report.json", "report.html", "sheet.png", "frames/0001.png"} <= names


@pytest.mark.parametrize("legacy", [False, True], ids=["recorded", "written by 0.2"])
def test_a_clip_the_user_reencoded_from_framegens_is_theirs(rendered, capsys, legacy):
    path, out = rendered
    if legacy:
        (out / "framegen-files.jsonl").unlink()
    reencode_flipped(out / "clip.mp4")
    theirs = (out / "clip.mp4").read_bytes()
    assert main(["render", "-q", str(path), "-o", str(out)]) == 2
    assert "clip.mp4 would be replaced" in capsys.readouterr().err
    assert (out / "clip.mp4").read_bytes() == theirs


def test_a_frame_framegen_wrote_and_the_user_changed_is_theirs(rendered, capsys):
    path, out = rendered
    frame = out / "frames" / "0001.png"
    with Image.open(frame) as image:  # an editor that keeps the PNG's text chunks, framegen's key among them
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in image.text.items():
            info.add_text(key, value)
        image.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(frame, pnginfo=info)
    theirs = frame.read_bytes()
    assert main(["render", "-q", str(path), "-o", str(out)]) == 2
    assert "frames/0001.png would be replaced" in capsys.readouterr().err and frame.read_bytes() == theirs


def test_a_users_file_in_anchor_cache_is_not_overwritten(tmp_path, capsys):
    spec = dict(BOARD, render=dict(BOARD["render"], cache="disk"))
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec))
    (tmp_path / "out" / "anchor-cache").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "out" / "anchor-cache" / "anchor.png")
    theirs = (tmp_path / "out" / "anchor-cache" / "anchor.png").read_bytes()
    assert main(["render", "-q", str(path), "-o", str(tmp_path / "out")]) == 2
    assert "anchor-cache/anchor.png would be replaced" in capsys.readouterr().err
    assert (tmp_path / "out" / "anchor-cache" / "anchor.png").read_bytes() == theirs


def test_a_folder_written_by_0_2_keeps_working_and_is_recorded_from_then_on(rendered, tmp_path):
    path, out = rendered
    (out / "framegen-files.jsonl").unlink()  # as 0.2 left it: marks, no record
    legacy = tmp_path / "legacy"
    shutil.copytree(out, legacy)
    spec = dict(BOARD, frames=[BOARD["frames"][0]])  # shorter: the stale frame goes too
    path.write_text(yaml.safe_dump(spec))
    assert main(["render", "-q", str(path), "-o", str(legacy)]) == 0
    assert (legacy / "framegen-files.jsonl").is_file() and not (legacy / "frames" / "0002.png").exists()
