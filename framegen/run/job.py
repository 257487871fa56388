"""The whole render, in order: storyboard -> shots and their keys -> anchor -> frames ->
MP4 -> report.

    from framegen import load_storyboard, render_storyboard
    result = render_storyboard(load_storyboard("storyboards/demo.yaml"))
    result.passed, result.frames[0]["background_mse"]

The output folder is held for the whole render (output/folder.py): files in the way that
framegen did not write stop it before it starts, and nothing but framegen's own files is
ever replaced or removed. Every shot is keyed from the model's files (run/identity.py);
shots already in the folder with the same key (a PNG text chunk) are reused, so a killed
render picks up where it stopped, and a render with nothing left to render loads no
model. With `render.cache: disk` the anchor cache is kept in the output folder and
reused by later renders.

Under `accelerate launch` with K processes the anchor cache goes to disk: process 0
builds it while the others wait, each process renders every K-th remaining shot, and
process 0 writes the MP4 and the report.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path

from ..engine.cache import CACHE_FILE, DiskCache
from ..engine.families import denoiser
from ..engine.masks import mask_png
from ..errors import RenderFailure
from ..models.facts import ModelFacts, facts_from_files, facts_of
from ..models.load import borrowed, load_pipeline, set_lora_scales
from ..output.files import atomic_write, write_png
from ..output.folder import OutputFolder
from ..output.pages import page_names
from ..output.report import report_head
from ..output.segmenters import segmenter_for
from ..storyboard import Storyboard
from .anchor import Anchor, KeptAnchor, in_place, load_anchor_image, obtain_anchor, read_image
from .finish import RenderResult, finish
from .identity import Identity, key
from .prepare import Prepared, prepare
from .rules import describe_rules
from .shots import Shot, output_names, report_entry, shots_of

MASK_TEXT = {"framegen-mask": "white = kept from the anchor"}  # marks framegen's masks (output/folder.py)
SUMMARY_FILES = ("anchor.png", "clip.mp4", "report.json", "report.csv", "sheet.png")  # and the pages: page_names


class Quiet:
    """Progress that shows nothing; the CLI passes a rich progress bar instead."""

    def image(self, name: str, total_steps: int, count: int = 1) -> None: ...

    def step(self, step: int) -> None: ...


def process_state():
    """accelerate's PartialState when started by `accelerate launch` with several
    processes (on CPU-only machines too), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return state if state.num_processes > 1 else None


def render_storyboard(
    board: Storyboard, output: Path | None = None, pipe=None, progress=None, kept: KeptAnchor | None = None
) -> RenderResult | None:
    """Render every shot and write the output folder; raises FramegenError on failure.
    `output` (default: the storyboard's) may lie anywhere: giving it is consent. A
    caller's `pipe` comes back as it went in (models.load.borrowed). A loop that renders
    again with the same pipe (render --watch) passes one `kept` to every render: an anchor
    pass is then kept in memory and reused while its keys hold. Returns None in the
    processes of a distributed render other than the main one."""
    out = Path(output) if output is not None else board.output_dir
    job = Job(board, out, progress or Quiet(), process_state(), shots_of(board), kept=kept)
    if job.state is not None and not job.state.is_main_process:  # the main process holds the folder
        return job.run(pipe)
    with OutputFolder(out).open() as folder:
        cache = [f"anchor-cache/{p.name}" for p in (out / "anchor-cache").glob("*") if CACHE_FILE.fullmatch(p.name)]
        names = chain(SUMMARY_FILES, page_names(len(job.shots) - 1), output_names(job.shots[1:]))
        folder.check_replaceable(chain(names, cache if job.disk_cache else []))
        job.folder = folder
        return job.run(pipe)


@dataclass
class Job:
    board: Storyboard
    out: Path
    progress: object
    state: object  # accelerate's PartialState, or None
    shots: list[Shot]  # the anchor, then the video order (keys filled in by `render`)
    folder: OutputFolder | None = None  # held by the main process
    kept: KeptAnchor | None = None  # a loop's last anchor (render --watch), reused while its keys hold

    @property
    def disk_cache(self) -> bool:
        """Whether the anchor cache lives on disk: asked for, or shared by several processes."""
        return self.board.spec.render.cache == "disk" or self.state is not None

    def run(self, pipe=None) -> RenderResult | None:
        """Key the shots from the model's facts, then render what is not in place."""
        spec, image_anchor = self.board.spec.model, self.board.spec.anchor.image is not None
        if pipe is not None:
            with borrowed(pipe, spec, image_anchor):
                return self.render(facts_of(pipe), lambda: pipe)
        facts = facts_from_files(spec, image_anchor)
        if facts is None:  # a hub id whose configs cannot be read: only loading tells
            return self.render(facts_of(loaded := self.load()), lambda: loaded)
        return self.render(facts, lambda: self.load(facts.scheduler))  # the scheduler the keys describe

    def load(self, scheduler=None):
        device = self.state.device if self.state is not None else None
        return load_pipeline(self.board.spec.model, device, self.board.spec.anchor.image is not None, scheduler)

    def render(self, facts: ModelFacts, pipe: Callable[[], object]) -> RenderResult | None:
        """The anchor, every shot not yet in place, then (main process) the clip and report."""
        board, out, main = self.board, self.out, self.folder is not None
        board.check_model(facts.config, type(facts.scheduler).__name__)
        segmenter = segmenter_for(board.spec.report.background, board.spec.model.id, board.folder) if main else None
        identity = Identity(board, facts)
        shots = self.shots = [replace(shot, key=identity.shot(shot)) for shot in self.shots]
        done = {shot.image for shot in shots[1:] if in_place(out, shot.image, shot.key)}
        todo = [shot for shot in shots[1:] if shot.image not in done]
        if not todo and in_place(out, "anchor.png", identity.anchor):  # nothing to render: no model
            anchor, cache = Anchor(read_image(out / "anchor.png"), "not needed"), None
            reference = load_anchor_image(board, identity.settings)
        else:
            prepared = prepare(board, pipe(), shots, check=False)  # checked above, against the same facts
            anchor, cache = self.render_shots(prepared, identity, shots, todo)
            reference = prepared.anchor_image
        if self.state is not None:
            self.state.wait_for_everyone()  # every frame is on disk
        if not main:
            return None
        described = functools.cache(lambda rules: describe_rules(rules, identity.module, board))  # frames share rules
        entry = lambda shot: report_entry(shot, described(shot.rules), shot.image in done)  # noqa: E731
        return self.finish(shots, facts, entry, anchor, reference, cache, segmenter, identity.settings)

    def render_shots(self, prepared: Prepared, identity: Identity, shots: list[Shot], todo: list[Shot]):
        """The anchor (built or reused), then every shot of `todo` this process renders."""
        out, state, board = self.out, self.state, self.board
        fields = identity.cache_fields(shots[1:])
        keys = (identity.anchor, key(fields))
        kept = self.kept if self.kept is not None and self.kept.keys == keys else None
        if kept is not None:
            cache = kept.cache
        elif self.disk_cache:
            cache = DiskCache(prepared.needed, out / "anchor-cache", write=atomic_write)  # recorded as framegen's
        else:
            cache = None
        renderer = prepared.renderer(cache)
        anchor = obtain_anchor(prepared, renderer, out, keys, fields, self.progress, kept) if self.folder else None
        if self.kept is not None and anchor is not None and anchor.how == "built":
            self.kept.hold(keys, anchor.image, renderer.cache, prepared.anchor_state)
        if state is not None:
            state.wait_for_everyone()  # the cache on disk is complete
            if self.folder is None and todo:
                status, tensors = renderer.cache.reopen(keys[1])
                if status != "reused":
                    raise RenderFailure(
                        f"process {state.process_index}: the anchor cache on disk is unusable ({status})"
                    )
                prepared.anchor_state.load_tensors(tensors, prepared.pipe.device, denoiser(prepared.pipe).dtype)
            todo = todo[state.process_index :: state.num_processes]
        keyframes_first = sorted(todo, key=lambda shot: shot.between is not None)  # keyframes batch, in-betweens don't
        for group in prepared.batches(keyframes_first, board.spec.render.batch):
            self.render_group(prepared, renderer, group)
        return anchor, renderer.cache

    def render_group(self, prepared: Prepared, renderer, group: list[Shot]) -> None:
        """One U-Net batch of shots; each is written (masks first) as soon as it is done."""
        name = group[0].name if len(group) == 1 else f"{group[0].name} +{len(group) - 1}"
        self.progress.image(name, prepared.settings.steps, len(group))
        set_lora_scales(prepared.pipe, group[0].lora)  # a batch shares its scales (Prepared.batches)
        controls = [prepared.conditioning.control(shot) for shot in group] if group[0].control else None
        results = renderer.frames([prepared.shot(shot) for shot in group], self.progress.step, controls)
        for shot, result in zip(group, results):
            for path, (_, mask) in zip(shot.mask_images, result.masks):
                write_png(mask_png(mask, result.image.size), self.out / path, MASK_TEXT)
            # the frame last: its key vouches for its masks too
            text = {"framegen-key": shot.key, "framegen-seconds": f"{result.seconds:.3f}"}
            if self.state is not None:
                text["framegen-process"] = str(self.state.process_index)
            write_png(result.image, self.out / shot.image, text)

    def finish(self, shots, facts, entry, anchor: Anchor, reference, cache, segmenter, settings) -> RenderResult:
        """The clip and the report (finish.py), once every frame is on disk."""
        out = self.out
        for shot in shots[1:] if self.state is not None else []:  # frames other processes wrote
            if not in_place(out, shot.image, shot.key):
                raise RenderFailure(f"frame '{shot.name}' is missing from {out / 'frames'}")
            for name in (shot.image, *shot.mask_images):  # checked: now framegen's by the record too
                if (out / name).is_file() and not self.folder.owns(name):
                    self.folder.ledger.wrote(out / name)
        self.folder.remove_stale({*output_names(shots[1:]), *page_names(len(shots) - 1)})
        model = {"dtype": facts.dtype, "device": facts.device}
        state = {
            "cache_bytes": cache.nbytes if cache else 0,
            "cache_entries": len(cache or ()),
            "anchor_cache": anchor.how,
        }
        spec = self.board.spec
        anchor_entry = {"prompt": spec.anchor.prompt, "image": "anchor.png", "seconds": round(anchor.seconds, 3)}
        head = report_head(self.board, (settings.width, settings.height), model, segmenter.name, anchor_entry, state)
        return finish(self.board, out, shots[1:], entry, anchor, reference, head, segmenter)
