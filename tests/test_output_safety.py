"""A user's files are worth more than any render: what framegen may delete, replace and
write, and the output a failed, killed or concurrent render leaves."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from framegen.cli import main
from framegen.output.folder import OutputFolder

BOARD = """
version: 1
model: {id: tiny-random}
render: {width: 64, height: 64, steps: 3, guidance: 7.5, seed: 7}
anchor: {prompt: "girl, white hair, blue skirt"}
swap: [{mode: mask, layers: [OUT3], steps: "1-3", mask: {grid: ["10", "01"]}}]
frames:
  - {name: red, replace: {"blue skirt": "red skirt"}}
  - {name: green, replace: {"blue skirt": "green skirt"}}
report: {background: {segmenter: none}}
"""


def board_file(folder: Path, text: str = BOARD, name: str = "board.yaml", **changes) -> Path:
    spec = yaml.safe_load(text)
    spec.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def png(path: Path, value: int = 200) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


# ------------------------------------------------------------------ what is deleted


def test_files_framegen_did_not_write_are_never_deleted(tmp_path, capsys):
    out = tmp_path / "out"
    png(out / "frames" / "holiday.png")
    png(out / "frames" / "0009.png")  # framegen's kind of name, but not framegen's file
    png(out / "masks" / "0007.png")
    png(out / "heatmaps" / "0008.png")
    (out / "frames" / ".notes").write_text("mine")
    code, _, err = run(capsys, "render", "-q", board_file(tmp_path), "-o", out)
    assert code == 0, err
    for name in ("frames/holiday.png", "frames/0009.png", "masks/0007.png", "heatmaps/0008.png", "frames/.notes"):
        assert (out / name).exists(), name
    # a shorter storyboard drops the frames framegen wrote for the longer one, and only those
    spec = yaml.safe_load(BOARD)
    spec["frames"] = spec["frames"][:1]
    shorter = board_file(tmp_path, yaml.safe_dump(spec), "short.yaml")
    assert run(capsys, "render", "-q", shorter, "-o", out)[0] == 0
    assert not (out / "frames" / "0002.png").exists() and not (out / "masks" / "0002.png").exists()
    assert not (out / "heatmaps" / "0002.png").exists() and (out / "heatmaps" / "0001.png").exists()
    assert (out / "frames" / "0001.png").exists() and (out / "frames" / "holiday.png").exists()
    assert (out / "frames" / "0009.png").exists() and (out / "masks" / "0007.png").exists()
    assert (out / "heatmaps" / "0008.png").exists()


def test_a_storyboard_rendering_into_its_own_folder_keeps_its_mask(tmp_path, capsys):
    png(tmp_path / "masks" / "region.png", 255)
    png(tmp_path / "masks" / "0001.png", 255)  # a user's mask named like framegen's
    spec = yaml.safe_load(BOARD)
    spec["swap"][0]["mask"] = {"image": "masks/region.png"}
    spec["frames"] = spec["frames"][:1]
    board = board_file(tmp_path, yaml.safe_dump(spec), output=".")
    code, _, err = run(capsys, "render", "-q", board)
    # masks/0001.png is in the way of the frame's mask and is not framegen's: refused, nothing rendered
    assert code == 2 and err.count("\n") == 1 and "masks/0001.png would be replaced" in err
    assert not (tmp_path / "anchor.png").exists()
    (tmp_path / "masks" / "0001.png").unlink()
    for _ in range(2):  # the second render finds everything in place
        code, _, err = run(capsys, "render", "-q", board)
        assert code == 0, err
        assert (tmp_path / "masks" / "region.png").is_file()


@pytest.mark.parametrize(
    "name",
    ["clip.mp4", "report.json", "report.csv", "report.html", "sheet.png", "anchor.png", "frames/0002.png",
     "heatmaps/0001.png"],
)  # fmt: skip
def test_a_users_file_in_the_way_is_refused_before_rendering(tmp_path, capsys, name):
    out = tmp_path / "out"
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(b"my own file")
    code, _, err = run(capsys, "render", "-q", board_file(tmp_path), "-o", out)
    assert code == 2 and err.count("\n") == 1 and f"{name} would be replaced but was not written by framegen" in err
    assert (out / name).read_bytes() == b"my own file"
    assert not (out / "frames" / "0001.png").exists()  # refused before any rendering


@pytest.mark.parametrize("link", ["frames", "masks", "heatmaps", "anchor-cache"])
def test_a_symlinked_subfolder_is_refused_and_nothing_is_written_through_it(tmp_path, capsys, link):
    outside = tmp_path / "elsewhere"
    png(outside / "0001.png")
    before = files(outside)
    out = tmp_path / "out"
    out.mkdir()
    (out / link).symlink_to(outside, target_is_directory=True)
    board = board_file(tmp_path, render={"width": 64, "height": 64, "steps": 3, "seed": 7, "cache": "disk"})
    code, _, err = run(capsys, "render", "-q", board, "-o", out)
    assert code == 2 and err.count("\n") == 1 and f"{out / link}: is a symbolic link" in err
    assert files(outside) == before


def test_a_second_render_into_a_held_folder_is_refused_and_a_stale_lock_is_not(tmp_path, capsys):
    out = tmp_path / "out"
    board = board_file(tmp_path)
    with OutputFolder(out).open():
        in_flight = out / "frames" / ".framegen-tmp-0001-abcdefgh.png"  # another render's file being written
        png(in_flight)
        code, _, err = run(capsys, "render", "-q", board, "-o", out)
        assert code == 2 and err.count("\n") == 1 and "another framegen render is writing here" in err
        assert in_flight.exists()
    # a render killed with -9 leaves its lock file: it does not block
    (out / ".framegen.lock").write_text("")
    code, _, err = run(capsys, "render", "-q", board, "-o", out)
    assert code == 0, err
    assert not in_flight.exists()  # a killed render's temporary file is cleaned up
    assert not [p for p in out.rglob(".*")]


def test_temporary_files_of_a_killed_render_are_removed_and_nothing_else(tmp_path, capsys):
    out = tmp_path / "out"
    leftovers = [out / ".framegen-tmp-clip-k2j3h4g5.mp4", out / "frames" / ".framegen-tmp-0001-zz9y8x7w.png"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half-written")
    png(out / ".my-hidden.png")
    assert run(capsys, "render", "-q", board_file(tmp_path), "-o", out)[0] == 0
    assert not any(path.exists() for path in leftovers) and (out / ".my-hidden.png").exists()


# -------------------------------------------------------------------------- the clip


def test_a_clip_that_fails_to_encode_leaves_the_earlier_clip(tmp_path, capsys, monkeypatch):
    """ffmpeg's output is decoded and counted before it replaces the earlier clip (here the
    decode finds fewer frames than were sent, as after a full disk)."""
    import imageio_ffmpeg

    out = tmp_path / "out"
    board = board_file(tmp_path)
    assert run(capsys, "render", "-q", board, "-o", out)[0] == 0
    before = files(out)
    monkeypatch.setattr(imageio_ffmpeg, "count_frames_and_secs", lambda path: (1, 0.1))
    reseeded = board_file(tmp_path, name="seed8.yaml", render={"width": 64, "height": 64, "steps": 3, "seed": 8})
    code, _, err = run(capsys, "render", "-q", reseeded, "-o", out)
    assert code == 3 and err.count("\n") == 1
    assert f"{out / 'clip.mp4'}: the encoded clip is incomplete (it decodes to 1 of 3 frames)" in err
    after = files(out)
    assert after["clip.mp4"] == before["clip.mp4"] and after["report.json"] == before["report.json"]
    assert not [p for p in out.rglob(".*")]


def test_a_full_disk_keeps_the_earlier_clip(tmp_path, capsys):
    """A 3 MB tmpfs (where the tests run as root and may mount one), filled until 4 KB are free."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()[:80]}")
    try:
        out = disk / "out"
        board = board_file(tmp_path)
        assert run(capsys, "render", "-q", board, "-o", out)[0] == 0
        clip = (out / "clip.mp4").read_bytes()
        (out / "frames" / "0001.png").unlink()  # one frame to render again, then the clip
        (disk / "filler").write_bytes(b"\0" * (shutil.disk_usage(disk).free - 4096))
        code, _, err = run(capsys, "render", "-q", board, "-o", out)
        assert code == 3 and err.count("\n") == 1 and "no space left on the device" in err
        assert str(out) in err and ".framegen-tmp" not in err
        assert (out / "clip.mp4").read_bytes() == clip
        assert not [p for p in out.rglob(".framegen-tmp-*")]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# ------------------------------------------------------------------- where it writes


def test_output_outside_the_storyboards_folder_needs_consent(tmp_path, capsys):
    folder = tmp_path / "boards"
    for output in ("../elsewhere", str(tmp_path / "absolute")):
        code, _, err = run(capsys, "validate", board_file(folder, output=output))
        assert (
            code == 2 and err.count("\n") == 1 and "output: " in err and "is not inside the storyboard's folder" in err
        )
        assert run(capsys, "render", "-q", board_file(folder, output=output))[0] == 2
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "absolute").exists()
    consented = board_file(folder, output={"path": "../elsewhere", "outside": True})
    assert run(capsys, "render", "-q", consented)[0] == 0 and (tmp_path / "elsewhere" / "clip.mp4").is_file()
    # on the command line, -o is consent
    assert run(capsys, "render", "-q", board_file(folder), "-o", tmp_path / "given")[0] == 0


@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_an_unwritable_output_folder_fails_before_the_anchor_pass(tmp_path, capsys, kind, monkeypatch):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("not a folder")
        expected = f"{out}: the output folder is a file"
    else:
        out.mkdir()
        real_open = os.open
        monkeypatch.setattr(
            os,
            "open",
            lambda path, *a, **k: (
                (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                if str(path).startswith(str(out))
                else real_open(path, *a, **k)
            ),
        )  # noqa: E501
        expected = f"{out}: cannot write the output folder (Permission denied)"
    code, _, err = run(capsys, "render", "-q", board_file(tmp_path), "-o", out)
    assert code == 2 and err.strip() == expected


# ------------------------------------------------------------------------- storyboards


def test_an_alias_bomb_is_refused_at_once(tmp_path, capsys):
    """Nine levels of ten aliases: 10^9 leaves from under 900 bytes."""
    import tracemalloc

    lines = ['l0: &l0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nversion: 1\n")
    assert bomb.stat().st_size < 900
    tracemalloc.start()
    start = time.perf_counter()
    code, _, err = run(capsys, "validate", bomb)
    seconds, (_, peak) = time.perf_counter() - start, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert code == 2 and err.count("\n") == 1 and "aliases expand to more than 100,000 values" in err
    # expanding 10^9 values would take hours and gigabytes; the bounds are far from both and far
    # from a loaded CI machine's noise (0.6 s seen there against 0.1 s here)
    assert seconds < 10 and peak < 20 << 20
    # aliases of a few values stay fine
    spec = BOARD.replace(
        'swap: [{mode: mask, layers: [OUT3], steps: "1-3", mask: {grid: ["10", "01"]}}]', "swap: &rules []"
    )
    (tmp_path / "alias.yaml").write_text(spec + "checks: {max_background_mse: 100}\nvideo: {fps: 4}\n")
    assert run(capsys, "validate", tmp_path / "alias.yaml")[0] == 0


def write(tmp_path, text: str, name: str = "board.yaml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path / name


@pytest.mark.parametrize(
    "change, where, message",
    [
        (('mask: {grid: ["10", "01"]}', "mask: {image: not-an-image.png}"), "swap[0].mask.image", "is not an image"),
        (
            ('mask: {grid: ["10", "01"]}', "mask: {boxes: [[70, 0, 90, 20]]}"),
            "swap[0].mask.boxes",
            "lies outside the 64x64",
        ),
        (('mask: {grid: ["10", "01"]}', "mask: {boxes: [[-20, -20, -5, -5]]}"), "swap[0].mask.boxes", "lies outside"),
        (('prompt: "girl, white hair, blue skirt"', 'prompt: " "'), "anchor.prompt", "the anchor prompt is empty"),
        (("segmenter: none", "segmenter: rembg, model_path: seg.onnx"), "report.background.model_path", "no such file"),
        (("id: tiny-random", "id: ./models/sd15"), "model.id", "no such folder"),
        (("id: tiny-random", "id: broken.safetensors"), "model.id", "is not a safetensors checkpoint"),
        (("id: tiny-random", "id: ."), "model.id", "is not a diffusers pipeline folder"),
    ],
)
def test_validate_catches_what_the_storyboards_files_tell(tmp_path, capsys, change, where, message):
    (tmp_path / "not-an-image.png").write_text("text, not pixels")
    (tmp_path / "broken.safetensors").write_bytes(b"\xff" * 64)
    board = write(tmp_path, BOARD.replace(*change).lstrip())
    for command in ("validate", "render"):
        code, _, err = run(capsys, command, board)
        assert code == 2 and err.count("\n") == 1 and f": {where}: " in err and message in err, err
        assert err.startswith(f"{board}:") and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "data, message",
    [
        (BOARD.encode("utf-16"), "the storyboard is UTF-16 text; save it as UTF-8"),
        (
            b"version: 1\nmodel: {id: caf\xe9}\n",
            "the storyboard is not UTF-8 text (byte 0xe9 at offset 26); save it as UTF-8",
        ),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00",
            "the storyboard is not UTF-8 text (byte 0x89 at offset 0); save it as UTF-8",
        ),
        (b"version: 1\x00\x00", "the storyboard holds NUL bytes: a binary file, not YAML"),
    ],
)
def test_storyboards_that_are_not_utf8_get_one_line(tmp_path, capsys, data, message):
    board = tmp_path / "board.yaml"
    board.write_bytes(data)
    code, _, err = run(capsys, "validate", board)
    assert code == 2 and err == f"{board}: {message}\n"


def test_a_local_model_resolves_against_the_storyboard_not_the_working_directory(
    tmp_path, capsys, monkeypatch, tiny_pipe
):
    tiny_pipe.save_pretrained(tmp_path / "boards" / "models" / "tiny", safe_serialization=True)
    board = board_file(tmp_path / "boards", BOARD.replace("id: tiny-random", "id: models/tiny"))
    monkeypatch.chdir(tmp_path)  # models/tiny does not exist here
    code, _, err = run(capsys, "render", "-q", board)
    assert code == 0, err
    report = json.loads((tmp_path / "boards" / "out" / "board" / "report.json").read_text())
    assert report["model"]["id"] == str(tmp_path / "boards" / "models" / "tiny")


# ---------------------------------------------------------------------- disk cache


def test_a_shortened_manifest_is_rebuilt_and_an_unneeded_cache_is_not_read(tmp_path, capsys):
    out = tmp_path / "out"
    board = board_file(tmp_path, render={"width": 64, "height": 64, "steps": 3, "seed": 7, "cache": "disk"})
    assert run(capsys, "render", "-q", board, "-o", out)[0] == 0
    manifest_path = out / "anchor-cache" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["positions"] = manifest["positions"][:1]
    manifest_path.write_text(json.dumps(manifest))
    # every frame is still in place: the cache is not needed, not read, and said so
    assert run(capsys, "render", "-q", board, "-o", out)[0] == 0
    assert json.loads((out / "report.json").read_text())["anchor_cache"] == "not needed"
    (out / "frames" / "0002.png").unlink()
    code, _, err = run(capsys, "render", "-q", board, "-o", out)
    assert code == 0, err
    assert json.loads((out / "report.json").read_text())["anchor_cache"] == "built"
    assert run(capsys, "render", "-q", board, "-o", out)[0] == 0  # and the rebuilt cache is sound
    (out / "frames" / "0002.png").unlink()
    assert run(capsys, "render", "-q", board, "-o", out)[0] == 0
    assert json.loads((out / "report.json").read_text())["anchor_cache"] == "reused"


# ------------------------------------------------------------------ signals, stderr


def framegen(*argv, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "framegen", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        **kwargs,
    )


def test_sigterm_stops_like_ctrl_c_and_the_render_resumes(tmp_path):
    spec = yaml.safe_load(BOARD)
    spec["render"]["steps"] = 40
    spec["frames"] = [{"name": f"f{i}", "add": f"tag{i}"} for i in range(8)]
    board = board_file(tmp_path, yaml.safe_dump(spec))
    out = tmp_path / "out"
    process = framegen("render", board, "-o", out)
    deadline = time.time() + 120
    while not (out / "frames" / "0001.png").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert err == "framegen: terminated (SIGTERM); files already written are complete\n"
    assert not [p for p in out.rglob(".*")]  # no temporary files, no lock
    finished = sorted(p.name for p in (out / "frames").iterdir())
    assert finished and "0008.png" not in finished
    resumed = framegen("render", board, "-o", out)
    stdout, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and err == ""
    report = json.loads((out / "report.json").read_text())
    assert [f["reused"] for f in report["frames"]][: len(finished)] == [True] * len(finished)


def test_stderr_off_a_terminal_is_for_errors_only(tmp_path):
    board = board_file(tmp_path)
    quiet = framegen("render", board, "-o", tmp_path / "a")
    stdout, err = quiet.communicate(timeout=300)
    assert quiet.returncode == 0 and err == "" and stdout.startswith(f"wrote {tmp_path / 'a'}/")
    shown = framegen("render", board, "-o", tmp_path / "b", "--progress")
    _, err = shown.communicate(timeout=300)
    assert shown.returncode == 0 and "images" in err


def test_a_sweep_does_not_take_over_a_folder_of_someone_elses(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "best.yaml").write_text("my notes\n")
    board = board_file(tmp_path)
    code, _, err = run(capsys, "sweep", "-q", board, "--layers", "OUT3", "--steps", "1-2", "-o", folder)
    assert code == 2 and err.count("\n") == 1 and "best.yaml would be replaced but no framegen sweep wrote" in err
    assert (folder / "best.yaml").read_text() == "my notes\n" and sorted(p.name for p in folder.iterdir()) == [
        "best.yaml"
    ]
