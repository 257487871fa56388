"""Every input has an answer, generated rather than listed: storyboards from the JSON Schema
and mutated at random places with hostile values (non-finite numbers, huge integers, odd
Unicode, wrong types, paths of every kind), reports mutated the same way, and every
command-line option of every command, from argparse's own definitions. Each run of
`validate` or `check` ends with exit 0, 1 (a check failed) or 2, one clean line per problem,
never a traceback or an exception's class name, and nothing of the user's changed; the gate
passes only what a correct gate would. A few tiny renders close it.

Bounded and derandomized here (the `ci` profile, well under a minute); the long run with
fresh examples each time is `python benchmarks/fuzz.py` (the `long` profile)."""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import json
import math
import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framegen.cli import arguments, build_parser, main
from framegen.storyboard.values import path_problem

from .conftest import QUICK_BOARD

settings.register_profile(
    "ci", max_examples=60, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)  # fmt: skip
settings.register_profile(  # benchmarks/fuzz.py: fresh examples, as many as it asks for
    "long", max_examples=int(os.environ.get("FRAMEGEN_FUZZ_EXAMPLES", 3000)), database=None, deadline=None,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
LONG = os.environ.get("FRAMEGEN_FUZZ_EXAMPLES")  # set by benchmarks/fuzz.py
settings.load_profile("long" if LONG else "ci")


def examples(ci: int) -> int:
    """A property's examples: `ci` in the suite, the long run's count there."""
    return int(LONG) if LONG else ci


# a line that names an exception's class (`OverflowError: ...`) or a traceback: a crash shown as text
CRASH = re.compile(r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception)\b|internal error|run with --debug")


def run(argv: list[str]) -> tuple[int, str, str]:
    """`framegen ARGV` in this process: (exit code, stdout, stderr); argparse's exits included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_clean(code: int, err: str, codes: tuple[int, ...] = (0, 2)) -> list[str]:
    """The answer a user can act on: an expected exit code, each line of stderr one
    problem, never a crash's words; on an input error at least one line."""
    lines = err.splitlines()
    assert code in codes, (code, err[-2000:])
    assert not CRASH.search(err), err[-2000:]
    assert all(line.strip() and len(line) < 5000 for line in lines), err[-2000:]
    if code == 2:
        assert lines, "an input error says what is wrong"
    return lines


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


# ---------------------------------------------------------------------------- hostile values

NUMBERS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1, -1.5, 0, 0.5, 2**63, 2**64, -(2**64), 10**30, 1e308]),
    st.integers(), st.floats(allow_nan=True, allow_infinity=True),
)  # fmt: skip
ODD_TEXT = st.sampled_from(
    ["", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u202eevil", "😀", "a\nb", "\t", "\x1b[31m", "ß" * 300,
     "x" * 5000, "%s%n", "{{}}", "'\"", "yes", "NaN", "1e999", "0x10", "-0"]
)  # fmt: skip
PATHS = st.sampled_from(
    ["/", ".", "..", "../../outside", "/etc/passwd", "/dev/null", "/dev/zero", "/proc/self/mem", "~", "~/x",
     "nowhere.safetensors", "a/b", "a/b/c", "org/name", "C:\\x\\y", "\\\\server\\share", "x" * 300 + ".png",
     ("a/" * 2000) + "b", "board.yaml", "sub", "sub/", "image.png", "not-an-image.png", "weights.safetensors",
     "demo", "tiny-random", "tiny-random-flux", "demo-control"]
)  # fmt: skip
HOSTILE = st.one_of(
    NUMBERS, ODD_TEXT, PATHS, st.booleans(), st.none(), st.text(max_size=20),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=4),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
)  # fmt: skip


def places(value, at=()):
    """Every path in a JSON-like value, the containers' included."""
    yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from places(item, at + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from places(item, at + (i,))


@st.composite
def mutated(draw, base: dict, count: int = 3):
    """`base` with up to `count` values replaced, or keys added, at random places."""
    value = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, count))):
        at = draw(st.sampled_from(list(places(value))))
        if not at:
            continue
        parent = value
        for part in at[:-1]:
            parent = parent[part]
        new = draw(HOSTILE)
        if isinstance(parent, dict) and draw(st.booleans()):  # a key of its own, or a known key's sibling
            parent[draw(st.sampled_from([at[-1], "extra", "seed", "steps", "mode", "lora", "tween", "hold"]))] = new
        else:
            parent[at[-1]] = new
    return value


# ----------------------------------------------------------------------- the user's folder

BASE_BOARD = {
    **QUICK_BOARD,
    "model": {"id": "tiny-random", "lora": [{"path": "weights.safetensors", "scale": 0.5}]},
    "swap": [
        {"mode": "full", "layers": ["OUT3"], "steps": "1"},
        {"mode": "mask", "layers": ["LATENTS"], "steps": "2", "mask": {"image": "image.png"}},
        {"mode": "threshold", "layers": ["OUT4"], "steps": "all", "threshold": 0.1},
        {"mode": "kv", "layers": ["OUT3"], "steps": [1, 2], "mask": {"boxes": [[0, 0, 32, 32]]}},
    ],
    "frames": [{"name": "blue", "replace": {"red shirt": "blue shirt"}, "hold": 2, "tween": 1, "lora": {"weights": 1}}],
    "video": {"fps": 8, "crf": 18},
    "checks": {"max_background_mse": 100.0, "max_flicker": 100.0},
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A user's folder: a storyboard's images, a LoRA for tiny-random, a sub-folder, a file that is no image."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("user")
    (root / "sub").mkdir()
    Image.new("L", (64, 64), 255).save(root / "image.png")
    (root / "not-an-image.png").write_bytes(b"not a png")
    key = "unet.up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
    save_file({f"{key}.lora_A.weight": torch.zeros(4, 64), f"{key}.lora_B.weight": torch.zeros(64, 4)},
              root / "weights.safetensors")  # fmt: skip
    return root


def test_the_base_storyboard_validates(folder):
    """The storyboard every mutation starts from is valid: a refusal below is the mutation's."""
    (folder / "board.yaml").write_text(yaml.safe_dump(BASE_BOARD))
    code, out, err = run(["validate", str(folder / "board.yaml")])
    assert code == 0, err


def validate(folder: Path, spec) -> tuple[int, str]:
    before = snapshot(folder)
    path = folder / "board.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=False))
    before["board.yaml"] = hashlib.sha256(path.read_bytes()).hexdigest()
    code, _, err = run(["validate", str(path)])
    assert snapshot(folder) == before, "validate changed a file"
    return code, err


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=mutated(BASE_BOARD))
def test_a_mutated_storyboard_is_valid_or_one_line_per_problem(folder, spec):
    code, err = validate(folder, spec)
    for line in assert_clean(code, err):
        assert re.match(rf"{re.escape(str(folder))}/board\.yaml(:\d+:\d+)?: ", line), line


def schema_storyboards():
    from hypothesis_jsonschema import from_schema

    from framegen.storyboard.schema import json_schema

    return from_schema(json_schema())


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], max_examples=examples(30))
@given(spec=schema_storyboards())
def test_a_storyboard_the_schema_allows_is_valid_or_one_line_per_problem(folder, spec):
    """What an editor's completion would accept: framegen answers it (a model it cannot
    find, a step outside the range) without crashing."""
    assert_clean(*validate(folder, spec))


# texts that take a parser's limits: nesting past the recursion limit, integers past Python's 4,300 digits
PATHOLOGICAL = [
    "a: " + "[" * 5000 + "]" * 5000, "[" * 100000 + "]" * 100000, "{" * 3000, "version: 1" + "0" * 5000,
    '{"framegen_version": "0.3.0", "frames": [{"name": "a", "index": 1' + "0" * 5000 + "}]}", "1e99999",
    "a: &a [*a]", "- &a [*a, *a]\n- *a", "\ufeff" * 3, "\x00" * 10, "a: !!binary AAAA",
    "a: !!python/object:os.system {}",
]  # fmt: skip
TEXTS = st.one_of(
    st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")), st.sampled_from(PATHOLOGICAL)
)


@pytest.mark.parametrize("text", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_a_text_at_a_parsers_limits_is_an_answer_as_storyboard_and_report(tmp_path, text):
    """Each of them every time, whatever the generators draw."""
    (tmp_path / "board.yaml").write_text(text, encoding="utf-8", errors="surrogateescape")
    (tmp_path / "report.json").write_text(text, encoding="utf-8", errors="surrogateescape")
    assert_clean(*run(["validate", str(tmp_path / "board.yaml")])[::2])
    assert_clean(*run(["check", str(tmp_path / "report.json"), "--max-flicker", "1"])[::2], (0, 1, 2))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS)
def test_any_text_as_a_storyboard_is_an_answer(folder, text):
    path = folder / "garbage.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    code, _, err = run(["validate", str(path)])
    assert_clean(code, err)


# --------------------------------------------------------------------------------- reports


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    """report.json of the quickest real render, with a limit of its storyboard's."""
    folder = tmp_path_factory.mktemp("report")
    (folder / "board.yaml").write_text(yaml.safe_dump({**QUICK_BOARD, "checks": {"max_background_mse": 1e6}}))
    code, _, err = run(["render", "-q", str(folder / "board.yaml"), "-o", str(folder / "out")])
    assert code == 0, err
    return json.loads((folder / "out" / "report.json").read_text())


def test_a_report_render_wrote_is_one_check_trusts(report):
    from framegen.output.report import report_problem

    assert report_problem(report) is None


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS)
def test_any_text_as_a_report_is_an_answer(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("text") / "report.json"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    for option in ([], ["--max-background-mse", "1"]):
        code, _, err = run(["check", str(path), *option])
        assert_clean(code, err, (0, 1, 2))


def fair_verdict(report, limits: dict) -> bool:
    """What a correct gate says of an untouched report: every limited measure a finite number within its limit."""
    for name, field in (("max_background_mse", "background_mse"), ("max_flicker", "flicker")):
        limit = limits.get(name)
        if limit is None:
            continue
        for frame in report["frames"]:
            value = frame.get(field)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value > limit
            ):
                return False
    return True


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_report_is_checked_or_refused_never_passed_wrongly(report, tmp_path_factory, data):
    edited = data.draw(mutated(report))
    option = data.draw(st.sampled_from([[], ["--max-background-mse", "1000"], ["--max-flicker", "0"]]))
    folder = tmp_path_factory.mktemp("check")
    path = folder / "report.json"
    path.write_text(json.dumps(edited))  # NaN and Infinity as json writes them
    code, out, err = run(["check", str(path), *option])
    assert_clean(code, err, (0, 1, 2))
    if code == 0:  # passed: the limits were numbers, and every frame within them
        if option:
            limits = {option[0].removeprefix("--").replace("-", "_"): float(option[1])}
        else:
            limits = edited["storyboard"]["resolved"]["checks"]
            assert all(
                v is None or (isinstance(v, int | float) and math.isfinite(v) and v >= 0) for v in limits.values()
            )
        assert fair_verdict(edited, limits), (edited["frames"], limits)
        assert out.startswith("ok: ")


# ----------------------------------------------------------------------- command-line values

# the types an option may have: each refuses what the libraries under it cannot take
CHECKED_TYPES = {arguments.port, arguments.batch, arguments.side, arguments.limit, arguments.path, None}


def options() -> list[tuple[str, argparse.Action]]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [
        (name, action)
        for name, sub in commands.choices.items()
        for action in sub._actions
        if action.option_strings and action.nargs != 0
    ]


def test_every_option_value_is_typed_by_a_checked_type():
    """No option takes a bare int or float: each has a type with a range, so a value is checked before loading."""
    untyped = [(name, action.dest) for name, action in options() if action.type not in CHECKED_TYPES]
    assert not untyped


def positionals(command: str, folder: Path) -> list[str]:
    return {"check": [str(folder / "report.json")], "report": [str(folder)], "layers": ["tiny-random"],
            "schema": []}.get(command, [str(folder / "board.yaml")])  # fmt: skip


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=examples(120))
@given(data=st.data())
def test_an_option_value_is_in_range_or_one_line(folder, data):
    command, action = data.draw(st.sampled_from(options()))
    value = data.draw(st.one_of(NUMBERS.map(str), ODD_TEXT, st.text(max_size=10), st.integers().map(str)))
    if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
        return  # no shell passes these in argv
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = build_parser().parse_args([command, *positionals(command, folder), action.option_strings[0], value])
        except SystemExit as exit:
            assert exit.code == 2
            assert len(err.getvalue().splitlines()) == 1 and action.option_strings[0] in err.getvalue()
            assert not CRASH.search(err.getvalue())
            return
    parsed = getattr(args, action.dest)
    if action.type is arguments.limit:
        assert math.isfinite(parsed) and parsed >= 0
    elif action.type is arguments.port:
        assert 0 <= parsed <= arguments.MAX_PORT
    elif action.type in (arguments.batch, arguments.side):
        assert parsed >= 1
    elif action.type is arguments.path:
        assert path_problem(parsed) is None
    elif action.choices is not None:
        assert parsed in action.choices


# ------------------------------------------------------------------------------ tiny renders


@settings(max_examples=max(3, int(LONG or 0) // 10), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=12),
    prompt=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=40).filter(
        str.strip
    ),
    seed=st.sampled_from([0, 2**32, 2**63, 2**64 - 1]),
)
def test_a_tiny_render_of_odd_but_valid_values_writes_a_report_check_trusts(tmp_path_factory, name, prompt, seed):
    from framegen.output.report import report_problem

    folder = tmp_path_factory.mktemp("render")
    spec = {**QUICK_BOARD, "render": {**QUICK_BOARD["render"], "seed": seed}, "anchor": {"prompt": prompt},
            "frames": [{"name": name, "add": prompt[::-1]}], "checks": {"max_background_mse": 1e9}}  # fmt: skip
    (folder / "board.yaml").write_text(yaml.safe_dump(spec))
    code, _, err = run(["render", "-q", str(folder / "board.yaml"), "-o", str(folder / "out")])
    assert_clean(code, err, (0,))
    written = json.loads((folder / "out" / "report.json").read_text())
    assert report_problem(written) is None
    assert run(["check", str(folder / "out" / "report.json")])[0] == 0
