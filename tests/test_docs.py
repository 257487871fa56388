"""The README and docs/ can't drift from the code: their storyboards validate (and those on
the demo model with checks pass them), their command lines parse, their links resolve,
and every number the README quotes comes from a doc that says how it was measured."""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from framegen.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKDOWN = [*DOCS, *sorted((ROOT / "framegen" / "models").glob("*/README.md"))]
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w-]*)\s*$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)\)")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@functools.cache  # every test reads the same files
def split_fences(path: Path) -> tuple[list[tuple[str, str, int]], str]:
    """The file's fenced blocks as (language, text, first line), and its prose with every
    block blanked out (line numbers kept)."""
    blocks, prose, block = [], [], None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line)
        if block is None and fence:
            block = (fence[1], fence[2], fence[3], number, [])
            prose.append("")
        elif block is not None and fence and fence[2] == block[1] and not fence[3]:
            indent, _, language, first, lines = block
            blocks.append((language, "\n".join(x[len(indent) :] if x.startswith(indent) else x for x in lines), first))
            block = None
            prose.append("")
        elif block is not None:
            block[4].append(line)
            prose.append("")
        else:
            prose.append(line)
    return blocks, "\n".join(prose)


def params(kinds: set[str]) -> list:
    return [
        pytest.param(path, text, id=f"{rel(path)}:{line}")
        for path in DOCS
        for language, text, line in split_fences(path)[0]
        if language in kinds
    ]


# -- storyboards ---------------------------------------------------------------------------


def storyboard_of(text: str) -> tuple[dict | str, str]:
    """(what to validate, what it is): a complete storyboard's text, or a fragment's keys
    put over the storyboard it names."""
    first = text.lstrip().splitlines()[0]
    if first.startswith("# not a storyboard:"):
        return "", "other"
    fragment = re.match(r"# fragment of (storyboards/[\w./-]+\.yaml):", first)
    if fragment:
        return over(fragment[1], text), "fragment"
    assert "version" in (yaml.safe_load(text) or {}), (
        "a yaml block is a whole storyboard (with `version:`), or starts with "
        "`# fragment of storyboards/NAME.yaml: ...` or `# not a storyboard: ...`"
    )
    return text, "storyboard"


def over(storyboard: str, text: str) -> dict:
    """The shipped storyboard with the top-level keys of `text` in place of its own."""
    return {**yaml.safe_load((ROOT / storyboard).read_text(encoding="utf-8")), **yaml.safe_load(text)}


def validate(source):
    """What `framegen validate` checks, for a storyboard that lives in storyboards/."""
    from framegen.models.facts import configs_before_loading
    from framegen.storyboard import load_storyboard

    board = load_storyboard(source, folder=ROOT / "storyboards")
    config = configs_before_loading(board.spec.model, online=False)
    if config is not None:
        board.check_model(config)
    return board


@pytest.mark.parametrize("path, text", params({"yaml", "yml"}))
def test_every_storyboard_in_the_docs_validates(path, text, tmp_path):
    source, kind = storyboard_of(text)
    if kind == "other":
        yaml.safe_load(text)
        return
    board = validate(source)
    if kind == "storyboard" and board.spec.model.id == "demo" and board.spec.checks is not None:
        from framegen import render_storyboard

        result = render_storyboard(board, output=tmp_path / "out")
        assert result.passed, f"copied as it is, it fails its checks at {[f['name'] for f in result.failing]}"


@pytest.mark.parametrize("path", sorted((ROOT / "docs" / "sweeps").glob("*-best.yaml")), ids=rel)
def test_the_sweeps_best_yaml_pastes_into_the_storyboard_it_was_swept_on(path):
    """What `framegen sweep` wrote for the demo storyboard (docs/paper-protocol.md) still validates there."""
    validate(over("storyboards/demo.yaml", path.read_text(encoding="utf-8")))


def test_the_readmes_first_storyboard_is_the_shipped_one():
    shipped = (ROOT / "storyboards" / "first.yaml").read_text(encoding="utf-8")
    first = next(text for language, text, _ in split_fences(README)[0] if language == "yaml")
    assert first + "\n" == shipped, "the README's first storyboard is storyboards/first.yaml, byte for byte"


def test_every_schema_key_is_in_the_storyboard_reference():
    """A key added to the schema without a row (or a word in its parent's row) fails here."""
    import json

    reference = (ROOT / "docs" / "guides" / "storyboard.md").read_text(encoding="utf-8")
    rows = {}
    for line in reference.splitlines():
        cells = line.split(" | ")
        if line.startswith("| `") and len(cells) >= 3:
            names = re.findall(r"`([\w.\[\]]+)`", cells[0])
            prefix = names[0].rsplit(".", 1)[0] + "." if "." in names[0] else ""
            for name in names:
                rows[(name if "." in name or not prefix else prefix + name).replace("[]", "")] = line
    schema = json.loads((ROOT / "storyboards" / "storyboard.schema.json").read_text())
    rules = reference[reference.index("## Swap rules") :] + (ROOT / "docs/guides/automatic-masks.md").read_text()
    missing = []
    for path in schema_paths(schema, schema.get("$defs", {}), ""):
        path = path.replace("[]", "")
        parent, _, leaf = path.rpartition(".")
        if path.startswith(("swap.", "frames.swap.")):
            documented = f"`{leaf}" in rules or f"{leaf}:" in rules
        else:
            documented = path in rows or any(key.startswith(path + ".") for key in rows)
            documented = documented or (parent in rows and re.search(rf"\b{leaf}\b", rows[parent]) is not None)
        if not documented:
            missing.append(path)
    assert not missing, f"undocumented storyboard keys: {missing}"


def schema_paths(schema: dict, defs: dict, prefix: str, seen: frozenset = frozenset()) -> Iterator[str]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from schema_paths(defs[name], defs, prefix, seen | {name})
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from schema_paths(option, defs, prefix, seen)
    if "items" in schema:
        yield from schema_paths(schema["items"], defs, prefix + "[]", seen)
    for key, value in schema.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        yield path
        yield from schema_paths(value, defs, path, seen)


# -- command lines -------------------------------------------------------------------------


SHELL = re.compile(r"^\s*(?:\w+=\S+\s+)*(?:time\s+)?(?:framegen|python3?|accelerate|pip)\s")


def commands(text: str) -> Iterator[list[str]]:
    """Each command of a shell block: lines joined at trailing backslashes, split at && ; |,
    cut at redirections, without leading VAR=value and `time`."""
    for line in text.replace("\\\n", " ").splitlines():
        if not SHELL.match(line):  # a block's other lines are output or prose
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token in ("&&", "||", ";", "|", "&"):
                while command and (re.match(r"^\w+=", command[0]) or command[0] == "time"):
                    command.pop(0)
                if command:
                    yield command
                command = []
            elif token in (">", ">>", "<", "2>"):
                command.append(None)  # what follows a redirection is no argument
            else:
                command.append(token)


def framegen_arguments(command: list) -> list[str] | None:
    command = command[: command.index(None)] if None in command else command
    if command[0] == "framegen":
        return command[1:]
    if "-m" in command and command[command.index("-m") + 1 :][:1] == ["framegen"]:
        return command[command.index("-m") + 2 :]
    return None


@pytest.mark.parametrize("path, text", params({"bash", "sh", "shell", "console", ""}))
def test_every_command_line_shown_is_one_the_cli_accepts(path, text, capsys):
    for command in commands(text):
        arguments = framegen_arguments(command)
        if arguments is not None:
            try:
                build_parser().parse_args(arguments)
            except SystemExit:
                pytest.fail(f"{rel(path)}: `{shlex.join(command)}`: {capsys.readouterr().err.strip()}")
        elif command[0] in ("python", "python3") and command[1:2] == ["-m"] and command[2] not in ("pytest", "pip"):
            module = ROOT / command[2].replace(".", "/")
            assert module.with_suffix(".py").exists() or (module / "__main__.py").exists(), shlex.join(command)
        elif command[0] in ("python", "python3") and len(command) > 1 and command[1].endswith(".py"):
            assert (ROOT / command[1]).exists(), f"{rel(path)}: `{shlex.join(command)}` names no file"


def test_the_readmes_install_and_test_commands_are_the_ones_ci_runs():
    shells = [text for language, text, _ in split_fences(README)[0] if language == "bash"]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    pip = [[t for t in shlex.split(line) if t != "--quiet"] for line in ci if line.startswith("pip install")]
    assert list(commands(shells[0])) == pip, "the README's first block installs as .ci/run does"
    assert any(text.strip() == ci[-1] for text in shells), f"the README shows no block that is CI's `{ci[-1]}`"


@pytest.mark.parametrize("path, text", params({"python"}))
def test_every_import_in_a_python_block_resolves(path, text):
    import ast

    imports = [node for node in ast.parse(text).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(body=imports, type_ignores=[]), rel(path), "exec"), {})


def test_the_readmes_engine_example_runs_on_a_tiny_pipeline(monkeypatch):
    """The README's own-pipe example, with the hub download swapped for framegen's tiny pipeline."""
    from diffusers import StableDiffusionPipeline

    from framegen.models.tiny import tiny_pipeline

    example = next(text for language, text, _ in split_fences(README)[0] if "framegen.engine" in text)
    monkeypatch.setattr(StableDiffusionPipeline, "from_pretrained", lambda *args, **kwargs: tiny_pipeline())
    scope: dict = {}
    exec(compile(example, "README.md", "exec"), scope)
    assert len(scope["cache"]) == 2 * 12  # OUT3 and OUT4 at steps 1-12
    assert scope["anchor"].size == scope["frame"].size


# -- links ---------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


@functools.cache
def headings(path: Path) -> set[str]:
    prose = split_fences(path)[1]
    return {slug(m[1]) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", prose, re.M)}


def links(path: Path) -> Iterator[tuple[Path, str]]:
    for target in LINK.findall(split_fences(path)[1]):
        if not re.match(r"^[a-z]+:", target):
            file, _, anchor = target.partition("#")
            yield ((path.parent / file).resolve() if file else path), anchor


@pytest.mark.parametrize("path", MARKDOWN, ids=rel)
def test_every_relative_link_resolves(path):
    for target, anchor in links(path):
        assert target.exists(), f"{rel(path)}: links {target} which does not exist"
        if anchor:
            assert target.suffix == ".md" and anchor in headings(target), f"{rel(path)}: no #{anchor} in {target.name}"


def test_every_doc_is_reachable_from_the_readme():
    reached, todo = {README}, [README]
    while todo:
        for target, _ in links(todo.pop()):
            if target not in reached:
                reached.add(target)
                if target.suffix == ".md":
                    todo.append(target)
    docs = sorted(p for p in (ROOT / "docs").rglob("*") if p.suffix in (".md", ".png"))
    assert [rel(p) for p in docs if p not in reached] == []


# -- numbers -------------------------------------------------------------------------------

MEASURED = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s?[–-]\s?\d[\d,]*(?:\.\d+)?)?\s?(?:×|x\b|s\b|ms\b|min\b|minutes\b|dB\b|[KMG]B\b|%)(?!\d)"
    r"|(?<=MSE )\d[\d,]*(?:\.\d+)?|(?<=IoU )\d[\d,]*(?:\.\d+)?|(?<=PSNR )\d[\d,]*(?:\.\d+)?"
)
COMMAND = re.compile(
    r"`(?:[A-Z_]+=\S+ )*(?:time )?(?:python|framegen) |^\s*(?:[A-Z_]+=\S+ )*(?:python|framegen) ", re.M
)
MACHINE = re.compile(r"2-core (?:CPU )?VM|H200")
WALL = re.compile(r"\bwall\b", re.I)


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text.replace("×", "x").replace("–", "-"))


def section(path: Path, anchor: str) -> str:
    """The section an anchor names, with the opening text of the sections above it (where a
    doc often states its command and machine once); the whole file without an anchor."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not anchor:
        return "\n".join(lines)
    prose = split_fences(path)[1].splitlines()  # a comment line in a code block is no heading
    marks = [
        (i, len(m[1]), slug(m[2])) for i, line in enumerate(prose) if (m := re.match(r"^(#{1,6})\s+(.+?)\s*$", line))
    ]
    found = [k for k, (_, _, name) in enumerate(marks) if name == anchor]
    assert found, f"no #{anchor} in {path.name}"
    start, level, _ = marks[found[0]]
    end = next((i for i, lv, _ in marks[found[0] + 1 :] if lv <= level), len(lines))
    openings, deepest = [], level
    for k in range(found[0] - 1, -1, -1):  # each enclosing section's text before its first subsection
        i, lv, _ = marks[k]
        if lv < deepest:
            openings.append("\n".join(lines[i : marks[k + 1][0]]))
            deepest = lv
    return "\n".join([*openings, *lines[start:end]])


def readme_pieces() -> Iterator[str]:
    """The README's prose as paragraphs, list items and table rows."""
    for paragraph in re.split(r"\n\s*\n", split_fences(README)[1]):
        yield from re.split(r"\n(?=\s*(?:[-*] |\|))", paragraph)


def test_every_number_the_readme_quotes_comes_from_a_doc_that_says_how_it_was_measured():
    problems, readme_links = [], [(target, anchor) for target, anchor in links(README) if target.suffix == ".md"]
    for piece in readme_pieces():
        numbers = MEASURED.findall(re.sub(r"\]\([^)]*\)", "]", piece))  # not in link targets
        sources = [s for s in readme_links if re.search(rf"\]\({re.escape(rel(s[0]))}(#{re.escape(s[1])})?\)", piece)]
        texts = [section(target, anchor) for target, anchor in sources]
        for number in numbers:
            cited = [t for t in texts if squeeze(number) in squeeze(t)]
            if not cited:
                problems.append(f"{number!r} is in no doc linked beside it: {piece.strip()[:80]}")
            elif not any(COMMAND.search(t) and MACHINE.search(t) and WALL.search(t) for t in cited):
                problems.append(f"{number!r}: the doc gives no command, machine and wall time: {piece.strip()[:80]}")
    assert not problems, "\n".join(problems)
