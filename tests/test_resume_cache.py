"""Reusing work across renders: the disk anchor cache (keyed, verified, rebuilt when
wrong) and frames already rendered into the output folder (a killed render resumes)."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from framegen.models.facts import facts_of
from framegen.run.identity import Identity
from framegen.run.job import Quiet, render_storyboard
from framegen.run.shots import shots_of
from framegen.storyboard import load_storyboard

from .conftest import TINY_BOARD, open_board


def board_file(tmp_path, name="board.yaml", **render):
    spec = yaml.safe_load(TINY_BOARD)
    spec["render"].update(render)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def anchor_key(tiny_pipe, path):
    """The disk cache's key: the anchor's and the (layer, step) pairs its frames read."""
    board = load_storyboard(path)
    identity = Identity(board, facts_of(tiny_pipe))
    return identity.cache(shots_of(board)[1:])


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 8}, {"steps": 9}, {"guidance": 5.0}, {"width": 72}, {"negative_prompt": "blurry"},
    ],
)  # fmt: skip
def test_cache_key_changes_with_each_render_setting(tiny_pipe, tmp_path, change):
    base = anchor_key(tiny_pipe, board_file(tmp_path, "a.yaml"))
    assert anchor_key(tiny_pipe, board_file(tmp_path, "b.yaml")) == base  # same settings, same key
    assert anchor_key(tiny_pipe, board_file(tmp_path, "c.yaml", **change)) != base


def test_cache_key_changes_with_prompt_layers_scheduler_and_weights(tiny_pipe, tmp_path):
    from framegen.models.fingerprints import weights_fingerprint
    from framegen.models.schedulers import set_scheduler
    from framegen.storyboard import ModelSpec

    path = board_file(tmp_path)
    base = anchor_key(tiny_pipe, path)
    text = path.read_text()
    other = tmp_path / "prompt.yaml"
    other.write_text(text.replace("girl, white hair", "boy, white hair"))
    assert anchor_key(tiny_pipe, other) != base
    other.write_text(text.replace("OUT10", "OUT11"))  # another layer: other pairs cached
    assert anchor_key(tiny_pipe, other) != base
    scheduler = tiny_pipe.scheduler
    try:
        set_scheduler(tiny_pipe, "euler")
        assert anchor_key(tiny_pipe, path) != base
    finally:
        tiny_pipe.scheduler = scheduler
    # a local single-file model is keyed by its bytes
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"one")
    first = weights_fingerprint(ModelSpec(id=str(weights)))
    weights.write_bytes(b"two")
    assert weights_fingerprint(ModelSpec(id=str(weights))) != first


def render(path, out, pipe, progress=None):
    result = render_storyboard(load_storyboard(path), out, pipe=pipe, progress=progress)
    assert result.passed
    return result.report


def test_disk_cache_is_reused_then_rebuilt_when_damaged(tiny_pipe, tmp_path):
    path = board_file(tmp_path, cache="disk")
    out = tmp_path / "out"
    first = render(path, out, tiny_pipe)
    assert first["anchor_cache"] == "built"
    manifest = json.loads((out / "anchor-cache" / "manifest.json").read_text())
    assert first["cache_entries"] == manifest["entries"] == 2 * 3 + 5 * 5
    (out / "frames" / "0001.png").unlink()  # so that a frame needs the cache

    second = render(path, out, tiny_pipe)
    assert second["anchor_cache"] == "reused" and second["anchor"]["seconds"] == 0
    assert [f["background_mse"] for f in second["frames"]] == [f["background_mse"] for f in first["frames"]]
    assert [f["reused"] for f in second["frames"]] == [False, True, True]

    for damage in ("flip", "truncate", "key"):
        cache = out / "anchor-cache"
        victim = sorted(cache.glob("position-*.safetensors"))[1]
        if damage == "flip":
            data = bytearray(victim.read_bytes())
            data[-5] ^= 0xFF
            victim.write_bytes(bytes(data))
        elif damage == "truncate":
            victim.write_bytes(victim.read_bytes()[:-100])
        else:
            manifest = json.loads((cache / "manifest.json").read_text())
            (cache / "manifest.json").write_text(json.dumps({**manifest, "key": "another"}))
        (out / "frames" / "0001.png").unlink()
        again = render(path, out, tiny_pipe)
        assert again["anchor_cache"] == "built", damage
        assert [f["background_mse"] for f in again["frames"]] == [f["background_mse"] for f in first["frames"]]


class KillAt(Quiet):
    """Progress that interrupts the render when `name` starts."""

    def __init__(self, name):
        self.name = name

    def image(self, name, total_steps, count=1):
        if name == self.name:
            raise KeyboardInterrupt


def test_a_killed_render_resumes_with_the_same_output(tiny_pipe, tmp_path):
    path = board_file(tmp_path)
    clean = render(path, tmp_path / "clean", tiny_pipe)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        render(path, out, tiny_pipe, progress=KillAt("free"))  # the third frame
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["0001.png", "0002.png"]
    resumed = render(path, out, tiny_pipe)
    assert [f["reused"] for f in resumed["frames"]] == [True, True, False]
    assert (out / "clip.mp4").read_bytes() == (tmp_path / "clean" / "clip.mp4").read_bytes()
    for key in ("background_mse", "foreground_mse", "background_fraction", "masks", "rules"):
        assert [f[key] for f in resumed["frames"]] == [f[key] for f in clean["frames"]]
    for name in ("0001.png", "0002.png", "0003.png"):  # same pixels (the PNG's timing text differs)
        assert np.array_equal(
            np.asarray(Image.open(out / "frames" / name)), np.asarray(Image.open(tmp_path / "clean" / "frames" / name))
        )

    # a changed frame is rendered again, the others are kept
    path.write_text(path.read_text().replace("smile", "frown"))
    changed = render(path, out, tiny_pipe)
    assert [f["reused"] for f in changed["frames"]] == [True, False, True]


def test_batched_frames_match_unbatched(tiny_pipe, tmp_path):
    """Each frame of a batch starts from the same noise and meets the anchor under its
    own rules. Batched matrix products may round differently from single ones, so the
    images are compared within one 8-bit level, not bit for bit."""
    single = render(board_file(tmp_path, "one.yaml"), tmp_path / "one", tiny_pipe)
    batched = render(board_file(tmp_path, "three.yaml", batch=3), tmp_path / "three", tiny_pipe)
    for a, b in zip(single["frames"], batched["frames"]):
        pixels_a = np.asarray(Image.open(tmp_path / "one" / a["image"])).astype(int)
        pixels_b = np.asarray(Image.open(tmp_path / "three" / b["image"])).astype(int)
        assert np.abs(pixels_a - pixels_b).max() <= 1, a["name"]
        assert a["rules"] == b["rules"]
    # the frames differ from each other: every one got its own prompt and rules
    first, second, third = (np.asarray(Image.open(tmp_path / "three" / f["image"])) for f in batched["frames"])
    assert not np.array_equal(first, second) and not np.array_equal(second, third)


def test_predicted_cache_bytes_and_where_auto_puts_the_cache(tiny_pipe, tmp_path, monkeypatch):
    import framegen.engine.placement as cache
    from framegen.engine.cache import DiskCache
    from framegen.engine.placement import cache_bytes, choose_cache

    board = load_storyboard(board_file(tmp_path))
    prepared, renderer = open_board(board, tiny_pipe)
    renderer.anchor(board.spec.anchor.prompt)
    settings = prepared.settings
    size = cache_bytes(
        tiny_pipe, renderer.cache.needed, settings.width, settings.height, settings.steps, settings.guidance
    )
    assert size == renderer.cache.nbytes  # shapes predicted exactly
    chosen = choose_cache("auto", renderer.cache.needed, tiny_pipe.device, tmp_path / "c", size)
    assert type(chosen) is cache.AnchorCache and not chosen.offload  # small: stays where it is computed
    monkeypatch.setattr(cache, "free_memory", lambda device: renderer.cache.nbytes)  # would take all of it
    assert isinstance(choose_cache("auto", renderer.cache.needed, tiny_pipe.device, tmp_path / "c", size), DiskCache)


def test_weight_fingerprints_are_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import os
    import time

    import framegen.models.fingerprints as fingerprints

    hashed = []
    real = fingerprints.sha256
    monkeypatch.setattr(fingerprints, "sha256", lambda path: hashed.append(path) or real(path))
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 1000)
    first = fingerprints.file_sha256(weights)
    assert fingerprints.file_sha256(weights) == first and len(hashed) == 1  # remembered
    # rewritten in place with the same size and its modification time put back: the ctime tells
    status = weights.stat()
    time.sleep(0.02)
    weights.write_bytes(b"b" * 1000)
    os.utime(weights, ns=(status.st_atime_ns, status.st_mtime_ns))
    second = fingerprints.file_sha256(weights)
    assert second != first and len(hashed) == 2
    # replaced by a rename, as downloads land: another inode
    (tmp_path / "download").write_bytes(b"c" * 1000)
    os.replace(tmp_path / "download", weights)
    assert fingerprints.file_sha256(weights) not in (first, second) and len(hashed) == 3
    monkeypatch.setenv("FRAMEGEN_REHASH", "1")  # on request, everything again
    fingerprints.file_sha256(weights)
    assert len(hashed) == 4
