"""Flicker: each video frame's background change from the one before it, in the report, the
CSV, JUnit, the page's chart and the gate; and the check that falls back to the
storyboard's own limits."""

import csv
import json

import pytest
import yaml

from framegen.cli import main
from framegen.output.chart import Chart

EXACT = ["IN1", "IN2", "IN4", "IN5", "IN7", "IN8", "MID"] + [f"OUT{i}" for i in range(3, 12)]  # tiny-random's bound
SAME = {"mode": "full", "layers": EXACT, "steps": "all"}


def board(frames: list[dict], **checks) -> dict:
    return {
        "version": 1,
        "model": {"id": "tiny-random"},
        "render": {"width": 64, "height": 64, "steps": 4, "guidance": 5.0, "seed": 3},
        "anchor": {"prompt": "girl, white hair, blue skirt"},
        "frames": frames,
        "report": {"background": {"segmenter": "none"}},
        **({"checks": checks} if checks else {}),
    }


def render(tmp_path, spec: dict, capsys):
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    main(["render", "-q", str(path), "-o", str(tmp_path / "out")])
    capsys.readouterr()
    return json.loads((tmp_path / "out" / "report.json").read_text())


def test_frames_equal_to_the_anchor_have_no_flicker(tmp_path, capsys):
    frames = [
        {"name": f"same{i}", "replace": {"blue skirt": c}, "swap": [SAME]} for i, c in enumerate(["red", "a hat"])
    ]
    report = render(tmp_path, board(frames), capsys)
    assert [f["flicker"] for f in report["frames"]] == [0.0, 0.0]
    assert [f["background_mse"] for f in report["frames"]] == [0.0, 0.0]


def test_one_changed_frame_flickers_at_the_two_video_frames_around_it_and_the_gate_names_them(tmp_path, capsys):
    frames = [
        {"name": "before", "replace": {"blue skirt": "red skirt"}, "swap": [SAME], "hold": 3},
        {"name": "changed", "replace": {"blue skirt": "red skirt"}, "swap": []},  # free: its own image
        {"name": "after", "replace": {"blue skirt": "red skirt"}, "swap": [SAME]},
    ]
    report = render(tmp_path, board(frames, max_flicker=0.5), capsys)
    flicker = {f["name"]: f["flicker"] for f in report["frames"]}
    assert flicker["before"] == 0.0 and flicker["changed"] > 0 and flicker["after"] > 0
    assert flicker["after"] == pytest.approx(flicker["changed"])  # the same two images, the other way round
    assert report["checks"] == [
        {"name": "max_flicker", "limit": 0.5, "passed": False, "failing_frames": ["changed", "after"]}
    ]
    rows = list(csv.DictReader((tmp_path / "out" / "report.csv").open()))
    assert float(rows[1]["flicker"]) == pytest.approx(flicker["changed"])
    # the gate, from the storyboard's own checks (no flag), with JUnit
    junit = tmp_path / "junit.xml"
    assert main(["check", str(tmp_path / "out" / "report.json"), "--junit", str(junit)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line.split("'")[1] for line in err if line.startswith("check failed")] == ["changed", "after"]
    assert all("flicker" in line and "> max_flicker 0.5" in line for line in err if line.startswith("check failed"))
    assert junit.read_text().count('classname="framegen.max_flicker"') == 3 and junit.read_text().count("<failure") == 2
    # a limit on the command line replaces the storyboard's
    assert main(["check", str(tmp_path / "out" / "report.json"), "--max-flicker", str(flicker["changed"] + 1)]) == 0
    assert f"worst flicker {json.dumps(flicker['changed'])}" in capsys.readouterr().out
    page = (tmp_path / "out" / "report.html").read_text()
    assert 'class="flicker"' in page and "flicker limit 0.5" in page


def test_check_without_limits_uses_none_when_the_storyboard_sets_none(tmp_path, capsys):
    report = render(tmp_path, board([{"name": "a", "add": "smile"}]), capsys)
    assert report["checks"] == []
    assert main(["check", str(tmp_path / "out" / "report.json")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "its storyboard sets no checks; give --max-background-mse or --max-flicker" in line


def test_the_chart_leaves_room_for_long_axis_labels_and_puts_limits_off_the_bars():
    frames = [{"name": "a", "background_mse": 11100.0, "flicker": 50.0}, {"name": "b", "background_mse": 20.0}]
    chart = Chart(len(frames))
    for frame in frames:
        chart.add(frame, "pass")
    svg = chart.svg(9000.0, 40.0)
    assert ">1.11e+04</text>" in svg  # the top tick, whole: it read "11e+04" when cut at the left edge
    first_bar_x = float(svg.split('<rect class="bar')[1].split('x="')[1].split('"')[0])
    assert first_bar_x >= 10 + 7 * len("1.11e+04")
    assert 'text-anchor="end">limit 9000.0</text>' in svg and 'text-anchor="end">flicker limit 40.0</text>' in svg
