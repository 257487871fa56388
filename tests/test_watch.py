"""`framegen render --watch`: a save renders again only the shots it changed; a save that
does not validate prints its line and keeps the last good output; a render whose inputs
change gives up between steps and leaves the files it finished."""

import json
import threading
import time

import pytest
import yaml

from framegen.cli.watch import named_files, watch
from framegen.errors import Cancelled
from framegen.storyboard import load_storyboard

SPEC = {
    "version": 1,
    "model": {"id": "tiny-random"},
    "render": {"width": 64, "height": 64, "steps": 4, "seed": 3},
    "anchor": {"prompt": "girl, white hair"},
    "frames": [{"name": "a", "add": "smile"}, {"name": "b", "add": "hat"}],
    "report": {"background": {"segmenter": "none"}},
}


def wait_for(condition, timeout: float = 120) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return False


def read(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def test_a_save_renders_only_what_it_changed_and_a_bad_save_keeps_the_last_good_output(tmp_path, capsys):
    board, report = tmp_path / "board.yaml", tmp_path / "out" / "report.json"
    spec = json.loads(json.dumps(SPEC))
    board.write_text(yaml.safe_dump(spec))
    stop = threading.Event()
    loop = threading.Thread(target=watch, args=(board, tmp_path / "out", True), kwargs={"stop": stop})
    loop.start()
    try:
        assert wait_for(lambda: read(report) is not None)
        spec["frames"][1]["add"] = "red hat"
        board.write_text(yaml.safe_dump(spec))
        assert wait_for(
            lambda: (read(report) or {"frames": [{}, {"prompt": ""}]})["frames"][1]["prompt"].endswith("red hat")
        )
        assert [f["reused"] for f in read(report)["frames"]] == [True, False]  # only the changed frame rendered
        before = report.read_bytes()
        board.write_text("version: 1\nmodel: {id: tiny-random\n")  # a save that does not parse
        assert wait_for(lambda: "invalid YAML" in capsys.readouterr().err, timeout=30)
        assert report.read_bytes() == before  # the last good output, untouched
        spec["frames"][0]["add"] = "big smile"
        board.write_text(yaml.safe_dump(spec))
        assert wait_for(
            lambda: (read(report) or {"frames": [{"prompt": ""}]})["frames"][0]["prompt"].endswith("big smile")
        )
        assert [f["reused"] for f in read(report)["frames"]] == [False, True]
    finally:
        stop.set()
        loop.join(30)
    assert not loop.is_alive()


def test_a_render_whose_inputs_change_gives_up_between_steps_and_keeps_finished_files(tmp_path, tiny_pipe):
    from framegen.run.job import render_storyboard
    from framegen.run.render import CANCEL

    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    render_storyboard(load_storyboard(path), tmp_path / "out", pipe=tiny_pipe)
    files = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    spec = json.loads(json.dumps(SPEC))
    spec["frames"][1]["add"] = "red hat"
    path.write_text(yaml.safe_dump(spec))
    calls = []
    token = CANCEL.set(lambda: calls.append(1) or len(calls) >= 2)  # a save arrives during step 2
    try:
        with pytest.raises(Cancelled):
            render_storyboard(load_storyboard(path), tmp_path / "out", pipe=tiny_pipe)
    finally:
        CANCEL.reset(token)
    after = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    kept = {p: data for p, data in after.items() if p.name != "framegen-files.jsonl"}
    assert kept == {p: data for p, data in files.items() if p.name != "framegen-files.jsonl"}  # nothing half-written


def test_a_loop_keeps_its_anchor_pass_while_its_keys_hold_and_frames_come_out_the_same(tmp_path, tiny_pipe):
    from PIL import Image

    from framegen.run.anchor import KeptAnchor
    from framegen.run.job import render_storyboard

    spec = json.loads(json.dumps(SPEC))
    spec["swap"] = [
        {"mode": "full", "layers": ["OUT3"], "steps": "1-2"},
        {"mode": "mask", "layers": ["LATENTS"], "steps": "3-4", "mask": {"auto": "attention"}},
    ]
    spec["frames"][1]["replace"] = {"white hair": "red hair"}
    kept, path = KeptAnchor(), tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec))
    first = render_storyboard(load_storyboard(path), tmp_path / "out", pipe=tiny_pipe, kept=kept)
    spec["frames"][1]["add"] = "red hat"  # a one-word change: the anchor's keys hold
    path.write_text(yaml.safe_dump(spec))
    again = render_storyboard(load_storyboard(path), tmp_path / "out", pipe=tiny_pipe, kept=kept)
    fresh = render_storyboard(load_storyboard(path), tmp_path / "fresh", pipe=tiny_pipe)
    assert (first.anchor_cache, again.anchor_cache, fresh.anchor_cache) == ("built", "kept", "built")
    for name in ("anchor.png", "frames/0002.png", "masks/0002.png"):  # its attention mask read the kept maps
        with Image.open(tmp_path / "out" / name) as kept_image, Image.open(tmp_path / "fresh" / name) as image:
            assert kept_image.tobytes() == image.tobytes(), name
    spec["render"]["seed"] = 4  # the anchor's own key changes: built again
    path.write_text(yaml.safe_dump(spec))
    assert render_storyboard(load_storyboard(path), tmp_path / "out", pipe=tiny_pipe, kept=kept).anchor_cache == "built"


def test_the_files_watched_are_the_storyboard_and_every_local_file_it_names(tmp_path):
    from PIL import Image

    Image.new("L", (8, 8), 255).save(tmp_path / "mask.png")
    spec = json.loads(json.dumps(SPEC))
    spec["frames"][0]["swap"] = [{"mode": "mask", "layers": ["OUT3"], "mask": {"image": "mask.png"}}]
    (tmp_path / "board.yaml").write_text(yaml.safe_dump(spec))
    board = load_storyboard(tmp_path / "board.yaml")
    assert named_files(board) == {(tmp_path / "board.yaml").resolve(), (tmp_path / "mask.png").resolve()}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_live_page_follows_the_storyboard_without_a_reload_by_the_reader(tmp_path):
    """In headless Chromium: the served page shows a frame's new prompt after a save, a bad
    save's error line above the last good frames, and recovers when the save is fixed."""
    from .test_review import CHROMIUM_FLAGS, chromium

    if chromium() is None:
        pytest.skip("no Chromium here (.ci/run installs Debian's `chromium`)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    board, report = tmp_path / "board.yaml", tmp_path / "out" / "report.json"
    spec = json.loads(json.dumps(SPEC))
    board.write_text(yaml.safe_dump(spec))
    stop, port = threading.Event(), free_port()
    loop = threading.Thread(target=watch, args=(board, tmp_path / "out", True), kwargs={"stop": stop, "port": port})
    loop.start()
    try:
        assert wait_for(lambda: read(report) is not None)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
            assert page.locator("article.frame").count() == 3  # the anchor and two frames
            spec["frames"][1]["add"] = "red hat"
            board.write_text(yaml.safe_dump(spec))
            page.wait_for_function("document.body.innerText.includes('red hat')", timeout=60_000)  # it reloaded itself
            assert [f["reused"] for f in read(report)["frames"]] == [True, False]
            board.write_text("version: 1\nmodel: {id: tiny-random\n")
            page.wait_for_function(
                "document.getElementById('framegen-live').textContent.includes('invalid YAML')", timeout=30_000
            )
            assert page.locator("article.frame").count() == 3  # the last good frames, still there
            spec["frames"][1]["add"] = "blue hat"
            board.write_text(yaml.safe_dump(spec))
            page.wait_for_function("document.body.innerText.includes('blue hat')", timeout=60_000)
            page.wait_for_function("document.getElementById('framegen-live').dataset.state === 'done'")
            browser.close()
    finally:
        stop.set()
        loop.join(30)
    import urllib.request

    with pytest.raises(OSError):  # the server is gone with the loop
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
