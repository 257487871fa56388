"""A render's cost is its frames: report.json is written as frames are measured, the sheet
and the chart of a long clip keep a bounded number of tiles and bars (showing where it
fails), and each frame is decoded once after it is written."""

import json

import pytest
import yaml
from PIL import Image, PngImagePlugin

from framegen.cli import main
from framegen.output.chart import MAX_BARS, Chart
from framegen.output.files import json_chunks
from framegen.output.review import SHEET_TILES, Sheet

from .conftest import QUICK_BOARD


def test_json_chunks_write_what_json_dumps_writes_with_lazy_lists_and_values():
    produced = []

    def frames():
        for i in range(3):
            produced.append(i)
            yield {"index": i, "masks": iter([]), "rules": iter([{"mode": "full"}])}

    document = {"head": {"a": [1, 2.5, None], "empty": {}}, "frames": frames(), "count": lambda: len(produced)}
    text = "".join(json_chunks(document))
    expected = {
        "head": {"a": [1, 2.5, None], "empty": {}},
        "frames": [{"index": i, "masks": [], "rules": [{"mode": "full"}]} for i in range(3)],
        "count": 3,  # called once the frames before it were written
    }
    assert text == json.dumps(expected, indent=2)


def frame(i: int, mse: float | None = 1.0, flicker: float | None = 0.5) -> dict:
    return {"name": f"f{i:05d}", "background_mse": mse, "flicker": flicker}


def test_a_short_clips_sheet_shows_every_frame():
    sheet = Sheet(Image.new("RGB", (8, 8)), 5)
    for i in range(5):
        sheet.add(frame(i), Image.new("RGB", (8, 8), (i, 0, 0)), failed=False)
    assert [tile[0].split("\n")[0] for tile in sheet.tiles] == [f"f{i:05d}" for i in range(5)]


def test_a_long_clips_sheet_spreads_its_tiles_and_shows_every_stretch_that_fails(tmp_path):
    total, failing = 10_000, {3, 5000, 5001, 9999}
    sheet = Sheet(Image.new("RGB", (8, 8)), total)
    spread = [round(slot * (total - 1) / (SHEET_TILES - 2)) for slot in range(SHEET_TILES - 1)]
    for i in range(total):
        path = tmp_path / f"{i}.png"  # only the files of frames a tile shows exist: no other is read
        if i in failing or i in spread:
            Image.new("RGB", (8, 8)).save(path)
        sheet.add(frame(i), path, failed=i in failing)
    names = [tile[0].split("\n")[0] for tile in sheet.tiles]
    assert len(names) == SHEET_TILES - 1 and len(set(names)) == SHEET_TILES - 1
    assert {"f00003", "f05000", "f09999"} <= set(names)  # the first failure near each chosen frame
    assert "f05001" not in names  # 5000 took that place first
    assert names[1:-1] == [f"f{i:05d}" for i in spread[1:-1]]  # evenly spread, but where 5000 took a place
    assert all("FAIL" in tile[0] for tile in sheet.tiles if tile[2])
    sheet.write(tmp_path / "sheet.png")
    with Image.open(tmp_path / "sheet.png") as written:
        assert written.size == (8 * 96, 8 * (96 + 24))  # the anchor and 63 tiles: eight rows of eight


def test_a_long_clips_chart_shows_each_bar_the_worst_of_its_run():
    total = 3 * MAX_BARS
    chart = Chart(total)
    for i in range(total):
        state = "fail" if i == 4 else "pass"
        chart.add(frame(i, mse=100.0 if i == 7 else 1.0, flicker=None if i < 3 else 2.0), state)
    svg = chart.svg(50.0)
    assert svg.count("<rect") == MAX_BARS
    assert svg.count('class="bar fail"') == 1 and "f00003 to f00005, worst: 1.00" in svg
    assert "f00006 to f00008, worst: 100.00" in svg
    assert "3 per bar (its worst)" in svg


def test_each_frame_is_decoded_once_after_it_is_written_and_resumes_decode_it_once(tmp_path, monkeypatch):
    board = {
        **QUICK_BOARD,
        "frames": [{"name": "a", "add": "smile"}, {"name": "b", "add": "hat", "tween": 1, "hold": 2}],
    }
    (tmp_path / "board.yaml").write_text(yaml.safe_dump(board))
    decoded = []
    load = PngImagePlugin.PngImageFile.load

    def counted(image):
        if image.tile and "/frames/" in str(image.filename):  # pixels not yet decoded
            decoded.append(image.filename.rsplit("/", 1)[1])
        return load(image)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", counted)
    frames = ["0001.png", "0002-1.png", "0002.png"]
    for _ in range(2):  # rendered, then every frame reused
        decoded.clear()
        assert main(["render", "-q", str(tmp_path / "board.yaml"), "-o", str(tmp_path / "out")]) == 0
        assert sorted(decoded) == sorted(frames)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [f["reused"] for f in report["frames"]] == [True] * 3 and report["video"]["frame_count"] == 1 + 1 + 1 + 2


@pytest.mark.parametrize("limit, failing", [(None, []), (0.0, ["a"])])
def test_a_render_keeps_only_its_failing_frames_and_reads_the_rest_from_its_report(tmp_path, limit, failing):
    from framegen import load_storyboard, render_storyboard

    board = {
        "version": 1,
        "model": {"id": "tiny-random"},
        "render": {"width": 64, "height": 64, "steps": 2, "seed": 3},
        "anchor": {"prompt": "girl, white hair, blue skirt, grass"},
        "frames": [{"name": "a", "add": "smile"}, {"name": "b", "replace": {"girl": "girl"}}],
        "report": {"background": {"segmenter": "none"}},
        **({"checks": {"max_background_mse": limit}} if limit is not None else {}),
    }
    result = render_storyboard(load_storyboard(board, tmp_path), tmp_path / "out")
    assert [f["name"] for f in result.failing] == failing and result.passed == (not failing)
    assert "frames" not in result.summary and "frames" not in result.summary["storyboard"]["resolved"]
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert result.frames == written["frames"] and result.count == 2
    assert [f["name"] for f in written["storyboard"]["resolved"]["frames"]] == ["a", "b"]
    assert {k: v for k, v in written.items() if k != "frames"} | {
        "storyboard": {**written["storyboard"], "resolved": result.summary["storyboard"]["resolved"]}
    } == result.summary


def test_a_long_clip_gets_pages_of_frames_and_a_shorter_render_drops_them_but_not_a_users(tmp_path, monkeypatch):
    import framegen.output.pages as pages

    monkeypatch.setattr(pages, "PAGE_FRAMES", 2)
    board = {**QUICK_BOARD, "frames": [{"name": f"n{i}", "add": f"pose {i}"} for i in range(5)]}
    path, out = tmp_path / "board.yaml", tmp_path / "out"
    path.write_text(yaml.safe_dump(board))
    assert main(["render", "-q", str(path), "-o", str(out)]) == 0
    shown = {name: (out / name).read_text() for name in ("report.html", "report-2.html", "report-3.html")}
    for name, frames in zip(shown, (["n0", "n1"], ["n2", "n3"], ["n4"])):
        assert shown[name].count('<article class="frame ') == len(frames) + (name == "report.html")  # + the anchor
        assert all(f'id="frame-{frame}"' in shown[name] for frame in frames)
        assert shown[name].rstrip().endswith("</div></body></html>")
    assert (
        '<a href="report-3.html">frames 5-5</a>' in shown["report.html"] and "<b>frames 1-2</b>" in shown["report.html"]
    )
    assert '<a href="report.html">' in shown["report-2.html"] and "<b>frames 3-4</b>" in shown["report-2.html"]

    (out / "report-7.html").write_text("my notes")  # a user's file with a page's name
    board["frames"] = board["frames"][:2]
    path.write_text(yaml.safe_dump(board))
    assert main(["render", "-q", str(path), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.glob("report*.html")) == ["report-7.html", "report.html"]
    assert (out / "report-7.html").read_text() == "my notes"
