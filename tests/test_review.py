"""What a render shows a person and a CI system: report.html, sheet.png, heat-maps, JUnit
XML that CI readers accept, GitHub annotations, and the storyboard JSON Schema."""

import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from framegen.cli import main
from framegen.output.review import HEAT_STOPS, UNMEASURED, heat_colours, heatmap

ROOT = Path(__file__).resolve().parent.parent
BOARD = """
version: 1
model: {id: tiny-random}
render: {width: 64, height: 64, steps: 6, guidance: 7.5, seed: 5}
anchor: {prompt: "girl, white hair, school uniform, blue skirt, outdoor"}
swap: []
frames:
  - name: same
    replace: {"blue skirt": "red skirt"}
    swap: [{mode: full, layers: [OUT11], steps: all}]
  - name: masked
    replace: {"blue skirt": "green skirt"}
    swap: [{mode: mask, layers: [LATENTS], steps: all, mask: {grid: ["1100", "1100"]}}]
  - {name: free, prompt: "a red car on a road", tween: 1}
video: {fps: 4}
report: {background: {segmenter: none}}
checks: {max_background_mse: 0.5}
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A render whose check fails: `same` is the anchor bit for bit (background MSE 0),
    `masked` and `free` (and free's in-between) drift past the limit."""
    folder = tmp_path_factory.mktemp("review")
    (folder / "board.yaml").write_text(BOARD.lstrip())
    assert main(["render", "-q", str(folder / "board.yaml"), "-o", str(folder / "out")]) == 1
    return folder


def report_of(rendered) -> dict:
    return json.loads((rendered / "out" / "report.json").read_text())


class Page(HTMLParser):
    """The tags of report.html with their attributes, in order."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def find(self, tag: str, **where) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in where.items())]


def test_every_render_writes_a_page_a_sheet_and_heatmaps(rendered):
    out = rendered / "out"
    report = report_of(rendered)
    names = [f["name"] for f in report["frames"]]
    assert names == ["same", "masked", "free~1", "free"]
    assert [f["heatmap"] for f in report["frames"]] == [
        "heatmaps/0001.png", "heatmaps/0002.png", "heatmaps/0003-1.png", "heatmaps/0003.png",
    ]  # fmt: skip
    # the anchor's twin has a black heat-map; a drifting frame's is not
    same, masked = (np.asarray(Image.open(out / f["heatmap"])) for f in report["frames"][:2])
    assert report["frames"][0]["background_mse"] == 0.0 and (same == HEAT_STOPS[0]).all()
    assert (masked != HEAT_STOPS[0]).any(axis=2).any()
    page = Page((out / "report.html").read_text())
    sources = [a["src"] for a in page.find("img")] + [a["src"] for a in page.find("source")]
    assert all((out / src).is_file() for src in sources)  # relative paths to the folder's own files
    assert not any(src.startswith(("http:", "https:", "//", "/")) for src in sources)
    assert not page.find("script") and not page.find("link")  # self-contained: nothing to fetch
    assert all(a.get("loading") == "lazy" for a in page.find("img"))
    articles = {a["id"]: a for a in page.find("article")}
    assert articles["frame-same"]["data-status"] == "pass"
    assert [n for n in names if articles[f"frame-{n}"]["data-status"] == "fail"] == ["masked", "free~1", "free"]
    assert len([a for t, a in page.tags if t == "rect" and "bar" in a.get("class", "")]) == len(names)
    assert len(page.find("line", **{"class": "limit"})) == 1
    sheet = Image.open(out / "sheet.png")
    assert sheet.text.get("framegen-sheet") and sheet.width == 5 * 160  # anchor + 4 frames in one row


def test_the_page_marks_the_prompt_delta_and_states_the_settings(rendered):
    from framegen.output.page import prompt_delta

    assert prompt_delta("girl, blue skirt, outdoor", "girl, red skirt, outdoor") == (
        "girl, <del>blue</del><ins>red</ins> skirt, outdoor"
    )
    assert prompt_delta("a, b", "a, b, <c>") == "a, b<ins>, &lt;c&gt;</ins>"
    text = (rendered / "out" / "report.html").read_text()
    assert "<del>blue</del><ins>red</ins> skirt" in text
    for fact in ("tiny-random", "64x64", "<dd>6</dd>", "<dd>5</dd>", "full OUT11 @ steps 1-6", "in-between 1 of 1"):
        assert fact in text, fact


def test_heat_colours_follow_the_fixed_scale():
    assert (heat_colours(np.array([0.0])) == HEAT_STOPS[0]).all()
    assert (heat_colours(np.array([64.0, 1000.0])) == HEAT_STOPS[-1]).all()  # the top, and clipped above it
    ramp = heat_colours(np.linspace(0, 64, 50)).astype(int).sum(axis=1)
    assert (np.diff(ramp) >= 0).all()  # brighter as the difference grows
    a = Image.new("RGB", (4, 1), (10, 10, 10))
    b = Image.new("RGB", (4, 1), (10, 10, 74))  # RMS over RGB: sqrt(64^2 / 3) = 36.95
    background = np.array([[True, True, False, True]])
    colours = np.asarray(heatmap(a, b, background))[0]
    assert (colours[2] == UNMEASURED).all() and (colours[0] == heat_colours(np.array([64 / 3**0.5]))[0]).all()


def test_report_command_rewrites_the_page_and_refuses_foreign_files(rendered, tmp_path, capsys):
    out = rendered / "out"
    before = (out / "report.html").read_text()
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").read_text() == before
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "report.html").write_text("<html>my own notes</html>")
    assert main(["report", str(copy)]) == 2
    assert "report.html would be replaced but was not written by framegen" in capsys.readouterr().err
    assert (copy / "report.html").read_text() == "<html>my own notes</html>"
    # a render refuses too, before rendering anything
    (copy / "sheet.png").unlink()
    Image.new("RGB", (4, 4)).save(copy / "sheet.png")
    (copy / "report.html").unlink()
    board = rendered / "board.yaml"
    assert main(["render", "-q", str(board), "-o", str(copy)]) == 2
    assert "sheet.png would be replaced" in capsys.readouterr().err


def test_junit_follows_the_common_form_and_round_trips_through_a_junit_reader(rendered, tmp_path, capsys):
    from junitparser import Failure, JUnitXml
    from lxml import etree

    report = rendered / "out" / "report.json"
    assert main(["check", str(report), "--max-background-mse", "0.5", "--junit", str(tmp_path / "j.xml")]) == 1
    capsys.readouterr()
    schema = etree.XMLSchema(etree.parse(str(ROOT / "tests" / "junit.xsd")))
    document = etree.parse(str(tmp_path / "j.xml"))
    schema.assertValid(document)
    assert document.getroot().tag == "testsuites"
    frames = report_of(rendered)["frames"]
    (suite,) = JUnitXml.fromfile(str(tmp_path / "j.xml"))
    assert (suite.name, suite.tests, suite.failures, suite.errors) == ("board", 4, 3, 0)
    cases = list(suite)
    assert [case.name for case in cases] == [f["name"] for f in frames]
    assert [case.time for case in cases] == [pytest.approx(f["seconds"], abs=1e-3) for f in frames]
    failed = {case.name: case.result[0] for case in cases if case.result}
    assert set(failed) == {"masked", "free~1", "free"} and all(isinstance(r, Failure) for r in failed.values())
    mse = frames[1]["background_mse"]
    assert failed["masked"].message == f"frame 'masked': background MSE {mse:.2f} > max_background_mse 0.5"
    # a passing check: the same cases, no failures
    assert main(["check", str(report), "--max-background-mse", "1e9", "--junit", str(tmp_path / "ok.xml")]) == 0
    schema.assertValid(etree.parse(str(tmp_path / "ok.xml")))
    (suite,) = JUnitXml.fromfile(str(tmp_path / "ok.xml"))
    assert (suite.tests, suite.failures) == (4, 0)


def test_github_annotations_point_at_the_failing_frames_lines(rendered, capsys, monkeypatch):
    board = rendered / "board.yaml"
    lines = board.read_text().splitlines()
    line_of = {name: next(i + 1 for i, text in enumerate(lines) if name in text) for name in ("masked", "free")}
    monkeypatch.chdir(rendered)  # the report names its storyboard as the render was given it
    report = Path("out/report.json")
    assert main(["check", str(report), "--max-background-mse", "0.5", "--github"]) == 1
    out = capsys.readouterr().out.splitlines()
    errors = [line for line in out if line.startswith("::error ")]
    assert len(errors) == 3
    assert errors[0].startswith(f"::error file={board},line={line_of['masked']},title=framegen max_background_mse::")
    mse = report_of(rendered)["frames"][1]["background_mse"]
    assert errors[0].endswith(f"frame 'masked': background MSE {mse:.2f} > max_background_mse 0.5")
    assert f"line={line_of['free']}," in errors[1] and "frame 'free~1'" in errors[1]  # an in-between: its frame's line
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # on by itself in GitHub Actions
    assert main(["check", str(report), "--max-background-mse", "0.5"]) == 1
    assert len([line for line in capsys.readouterr().out.splitlines() if line.startswith("::error ")]) == 3
    monkeypatch.delenv("GITHUB_ACTIONS")
    assert main(["check", str(report), "--max-background-mse", "0.5"]) == 1
    assert "::error" not in capsys.readouterr().out


# ------------------------------------------------------------------------ JSON Schema


def schema_validator():
    import jsonschema

    schema = json.loads((ROOT / "storyboards" / "storyboard.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_command_writes_the_shipped_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((ROOT / "storyboards/storyboard.schema.json").read_text())


@pytest.mark.parametrize("path", sorted((ROOT / "storyboards").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_storyboards_name_the_schema_and_validate_against_it(path):
    assert path.read_text().startswith("# yaml-language-server: $schema=storyboard.schema.json\n")
    assert list(schema_validator().iter_errors(yaml.safe_load(path.read_text()))) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.update(versoin=1),  # a typo'd key
        lambda s: s.update(version=2),
        lambda s: s["frames"].clear(),
        lambda s: s["frames"][0].update(hold=0),
        lambda s: s["frames"][0]["swap"][0].update(mode="blend"),
        lambda s: s["frames"][0]["swap"][0].update(threshold=-1, mode="threshold"),
        lambda s: s["render"].update(steps="many"),
        lambda s: s["anchor"].pop("prompt"),
    ],
    ids=["typo", "version", "no-frames", "hold-0", "mode", "negative-threshold", "steps-type", "no-prompt"],
)
def test_the_schema_rejects_what_the_validator_rejects(change, tmp_path, capsys):
    spec = yaml.safe_load(BOARD)
    change(spec)
    assert list(schema_validator().iter_errors(spec))
    (tmp_path / "board.yaml").write_text(yaml.safe_dump(spec))
    assert main(["validate", str(tmp_path / "board.yaml")]) == 2
    capsys.readouterr()


# ------------------------------------------------------------------ in a real browser


def chromium() -> str | None:
    return os.environ.get("FRAMEGEN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.mark.skipif(chromium() is None, reason="no Chromium here (.ci/run installs Debian's `chromium`)")
def test_the_page_in_headless_chromium(rendered, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    out = rendered / "out"
    problems = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
        page.goto((out / "report.html").as_uri(), wait_until="load")
        for image in page.locator("img").all():  # lazy images load once near the viewport
            image.scroll_into_view_if_needed()
        page.wait_for_function("Array.from(document.images).every(image => image.complete)", timeout=10_000)
        widths = page.eval_on_selector_all("img", "images => images.map(image => image.naturalWidth)")
        assert len(widths) == 1 + 4 + 4 + 1 and all(width > 0 for width in widths)  # anchor, frames, heat-maps, mask
        failing = page.eval_on_selector_all("article.frame.fail h3", "hs => hs.map(h => h.firstChild.textContent)")
        assert failing == ["masked", "free~1", "free"]
        assert page.locator("article.frame.pass h3 .badge").all_inner_texts() == ["pass"]
        assert page.locator("svg.chart rect.bar").count() == 4
        assert page.locator("svg.chart rect.bar.fail").count() == 3
        assert page.locator("svg.chart line.limit").count() == 1
        state = page.evaluate(
            """() => new Promise(done => {
                const video = document.querySelector('video');
                if (video.readyState >= 2) return done(video.readyState);
                video.addEventListener('loadeddata', () => done(video.readyState));
                video.addEventListener('error', () => done(-1));
                video.load();
            })"""
        )
        assert state >= 2  # HAVE_CURRENT_DATA: the clip decodes
        assert page.evaluate("document.querySelector('video').duration") > 0
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert problems == []
    assert Image.open(tmp_path / "report.png").height > 900
