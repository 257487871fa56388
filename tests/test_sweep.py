"""`framegen sweep` on tiny-random: run counts and table shapes, resume, best.yaml
round trip, and one-line errors for bad arguments."""

import csv
import json

import pytest
import yaml

from framegen.cli import main
from framegen.cli.sweep import parse_thresholds
from framegen.sweep import plan_runs, subsets

BOARD = """
version: 1
model: {id: tiny-random}
render: {width: 64, height: 64, steps: 6, guidance: 7.5, seed: 3}
anchor: {prompt: "girl, white hair, school uniform, blue skirt, outdoor"}
frames:
  - {name: pants, replace: {"school uniform, blue skirt": "pants, dress shirts"}}
  - name: hair
    replace: {"white hair": "red hair"}
    swap: [{mode: mask, layers: [OUT5], steps: "4-6", mask: {grid: ["10", "01"]}}]
report: {background: {segmenter: none}}
"""


def sweep(capsys, *argv):
    code = main(["sweep", "-q", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def rows_of(folder):
    with open(folder / "sweep.csv", newline="") as table:
        return list(csv.DictReader(table))


def test_plan_counts_match_the_papers_protocols():
    layers = ["IN8", "OUT3", "OUT4", "OUT5", "OUT6", "OUT10"]
    assert len(subsets(layers, False)) == 63 and subsets(layers, False)[0] == ("000001", ["OUT10"])
    whole = plan_runs(total_steps=50, layers=layers, ranges=[(1, 15), (1, 20), (1, 25)], use_subsets=True)
    assert len(whole) == 1 + 63 * 3 and whole[0].rules == ()
    mask = plan_runs(total_steps=50, layers=["OUT3", "OUT4"], ranges=[(1, 20)], use_subsets=True, then="mask",
                     then_layers=layers, mask={"grid": ["10"]})  # fmt: skip
    assert len(mask) == 1 + 64  # the paper's 64 subsets, the empty one = whole tensor only
    assert mask[-1].rules[1] == {"mode": "mask", "layers": layers, "steps": "21-50", "mask": {"grid": ["10"]}}
    thresholds = parse_thresholds("0.01:0.20:0.01")
    assert len(thresholds) == 20 and thresholds[12] == 0.13
    threshold = plan_runs(total_steps=50, layers=["OUT3", "OUT4"], ranges=[(1, 20)], then="threshold",
                          then_layers=["OUT3", "OUT4", "OUT5", "OUT6", "OUT10"], thresholds=thresholds)  # fmt: skip
    assert len(threshold) == 1 + 20 and threshold[13].rules[1]["threshold"] == 0.13


def test_subset_sweep_table_shape_and_resume(tmp_path, capsys):
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    out = tmp_path / "sweep"
    code, _, _ = sweep(capsys, board, "--layers", "OUT3,OUT4", "--subsets", "--steps", "1-2,1-3", "-o", out)
    assert code == 0
    rows = rows_of(out)
    assert len(rows) == 1 + 3 * 2
    assert [(r["row"], r["col"]) for r in rows[1:4]] == [("01", "1-2"), ("10", "1-2"), ("11", "1-2")]
    md = (out / "sweep.md").read_text()
    assert "| subset (bits: OUT3, OUT4) | steps 1-2 | steps 1-3 |" in md
    assert (
        sum(
            line.startswith("| 01 |") or line.startswith("| 10 |") or line.startswith("| 11 |")
            for line in md.splitlines()
        )
        == 3
    )
    assert (out / "sheet-whole.png").exists() and len(list((out / "runs").glob("*.png"))) == 1 + 7

    # a killed sweep: the last row was cut mid-line and two rows never written
    text = (out / "sweep.csv").read_text().splitlines(keepends=True)
    (out / "sweep.csv").write_text("".join(text[:-3]) + text[-3][:25])
    kept = {r["key"]: r for r in rows[:-3]}
    code, out_text, _ = (
        main(["sweep", str(board), "--layers", "OUT3,OUT4", "--subsets", "--steps", "1-2,1-3", "-o", str(out)]),
        *capsys.readouterr(),
    )
    assert code == 0 and "7 runs, 4 already done, 3 to render" in out_text  # progress notes: stdout
    again = rows_of(out)
    assert len(again) == 7 and {r["key"] for r in again} == {r["key"] for r in rows}
    for row in again:  # finished runs were skipped (their timing is unchanged), the others match
        if row["key"] in kept:
            assert row == kept[row["key"]]
        assert row["background_mse"] == next(r for r in rows if r["key"] == row["key"])["background_mse"]


def test_best_yaml_renders_the_same_numbers(tmp_path, capsys):
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    out = tmp_path / "sweep"
    code, _, _ = sweep(capsys, board, "--frame", "hair", "--layers", "OUT3,OUT4", "--steps", "1-2,1-3",
                       "--then", "mask", "--then-layers", "OUT5,OUT6", "--subsets", "-o", out)  # fmt: skip
    assert code == 0
    rows = rows_of(out)
    assert len(rows) == 1 + 2 * 4  # the frame's own mask serves the second phase
    best = yaml.safe_load((out / "best.yaml").read_text())["swap"]
    winner = min(rows, key=lambda r: float(r["background_mse"]))
    assert json.loads(winner["key"]) == best

    # paste best.yaml as the frame's rules and render
    spec = yaml.safe_load(BOARD)
    spec["frames"] = [{"name": "hair", "replace": {"white hair": "red hair"}, "swap": best}]
    pasted = tmp_path / "pasted.yaml"
    pasted.write_text(yaml.safe_dump(spec))
    assert main(["render", "-q", str(pasted), "-o", str(tmp_path / "render")]) == 0
    report = json.loads((tmp_path / "render" / "report.json").read_text())
    assert report["frames"][0]["background_mse"] == float(winner["background_mse"])


def test_probe_swaps_each_cross_attention_layer_alone(tmp_path, capsys):
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    code, _, _ = sweep(capsys, board, "--probe", "--cache", "disk", "-o", tmp_path / "probe")
    assert code == 0
    rows = rows_of(tmp_path / "probe")
    assert [r["row"] for r in rows] == ["no swap", "IN1", "IN2", "IN4", "IN5", "IN7", "IN8", "MID"] + [
        f"OUT{i}" for i in range(3, 12)
    ]
    assert all(json.loads(r["key"])[0]["steps"] == "1-6" for r in rows[1:])
    assert "| OUT11 |" in (tmp_path / "probe" / "sweep.md").read_text()
    assert not (tmp_path / "probe" / "anchor-cache").exists()  # the streamed cache is removed


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--layers", "OUT3,OUT13"], "--layers: unknown layer 'OUT13' (known: IN0, IN1"),
        (["--layers", "OUT3", "--steps", "1-9"], "--steps: range 1-9 is not inside 1..6"),
        (["--layers", "OUT3", "--steps", "a-b"], "--steps: cannot read 'a-b'"),
        (
            ["--frame", "hair", "--layers", "OUT3", "--steps", "1-6", "--then", "mask"],
            "--then mask: the phase 1-6 leaves no later steps",
        ),
        (["--layers", "OUT3", "--then", "threshold", "--thresholds", "0.2:0.1:0.01"], "--thresholds: cannot read"),
        (["--layers", "OUT3", "--then", "mask"], "--then mask: give --mask FILE"),
        (["--layers", "OUT3", "--thresholds", "0.1"], "add --then mask or --then threshold"),
        (["--frame", "nope", "--probe"], "--frame: no frame named 'nope' (frames: pants, hair)"),
        ([], "give --probe, or --layers"),
        (["--probe", "--steps", "1-3,1-4"], "--probe swaps each layer alone over one step range"),
    ],
)
def test_bad_arguments_are_one_line_with_exit_2(tmp_path, capsys, argv, message):
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    code, out, err = sweep(capsys, board, *argv, "-o", tmp_path / "s")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "s").exists()


def test_another_storyboard_setting_is_refused_not_mixed(tmp_path, capsys):
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    assert sweep(capsys, board, "--layers", "OUT3", "--steps", "1-2", "-o", tmp_path / "s")[0] == 0
    board.write_text(BOARD.replace("seed: 3", "seed: 4"))
    code, _, err = sweep(capsys, board, "--layers", "OUT3", "--steps", "1-2", "-o", tmp_path / "s")
    assert code == 2 and "holds a sweep of other settings" in err


def test_mask_phase_with_an_automatic_mask(tmp_path, capsys):
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    out = tmp_path / "auto"
    code, _, _ = sweep(capsys, board, "--layers", "OUT3", "--steps", "1-2", "--then", "mask",
                       "--then-layers", "OUT5,OUT6", "--mask", "auto:attention", "-o", out)  # fmt: skip
    assert code == 0
    rows = rows_of(out)
    assert json.loads(rows[1]["key"])[1]["mask"] == {"auto": "attention"}
    assert yaml.safe_load((out / "best.yaml").read_text())["swap"] in ([], *[json.loads(r["key"]) for r in rows])


def test_batched_sweep_gives_the_same_table(tmp_path, capsys):
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    args = ["--layers", "OUT3,OUT4", "--subsets", "--steps", "1-2"]
    assert sweep(capsys, board, *args, "-o", tmp_path / "one")[0] == 0
    assert sweep(capsys, board, *args, "--batch", "4", "-o", tmp_path / "four")[0] == 0
    one, four = rows_of(tmp_path / "one"), rows_of(tmp_path / "four")
    assert [r["key"] for r in one] == [r["key"] for r in four]
    for a, b in zip(one, four):  # within the batching tolerance (one 8-bit level somewhere)
        assert abs(float(a["background_mse"]) - float(b["background_mse"])) < 0.05


def test_a_kv_probe_over_early_steps_swaps_each_layers_keys_and_values_there(tmp_path, capsys):
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    options = ("--probe", "--kv", "--steps", "1-2", "--layers", "IN1,OUT11", "-o", tmp_path / "p")
    code, _, _ = sweep(capsys, board, *options)
    assert code == 0
    rows = rows_of(tmp_path / "p")
    assert [json.loads(r["key"]) for r in rows[1:]] == [
        [{"mode": "kv", "steps": "1-2", "layers": [name]}] for name in ("IN1", "OUT11")
    ]
    assert "| layer (kv, steps 1-2) |" in (tmp_path / "p" / "sweep.md").read_text()
