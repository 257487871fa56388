"""`framegen render --watch`: render, then render again on every save of the storyboard or
of a file it names (mask, control and anchor images, LoRA files, a local model's files).

Only shots whose keys changed render again (a render reuses the rest, as always); the model
is loaded once and lent to every render while the storyboard's model block stays the same,
and the anchor pass is kept in memory and reused while its keys hold.
A save that does not validate prints its one line and leaves the last good output as it
is; a save during a render gives it up between two denoising steps (the files it finished
stay whole; the one it was writing is dropped) and starts over. Ctrl-C ends it as it ends a
render (exit 130). `stop` ends the loop from another thread (tests)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from ..errors import Cancelled, FramegenError, InvalidInput, printable


def named_files(board) -> set[Path]:
    """The storyboard and every local file it names, as absolute paths."""
    spec, folder = board.spec, Path(board.folder)
    names = [spec.anchor.image, *(spec.anchor.control or [])]
    names += [path for frame in spec.frames for path in (frame.control or [])]
    names += [rule.mask.image for rules in board.rule_paths() for _, rule in rules if getattr(rule, "mask", None)]
    names += [lora.path for lora in spec.model.lora] + [spec.model.id]
    names += [getattr(spec.model, part) for part in ("clip_l", "clip_g", "t5xxl", "vae")]
    paths = {(folder / name).resolve() for name in names if name}
    return {Path(board.path).resolve()} | {path for path in paths if path.exists()}


class Watcher:
    """Sets `changed` when any of the watched files changes (their folders are watched, so
    an editor that saves by renaming is seen too); `follow` swaps the set being watched."""

    def __init__(self):
        self.changed = threading.Event()
        self.files: set[Path] = set()
        self._thread, self._restart = None, threading.Event()

    def follow(self, files: set[Path]) -> None:
        if files == self.files and self._thread is not None:
            return
        self._restart.set()
        if self._thread is not None:
            self._thread.join()
        self.files, self._restart = set(files), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._restart,), daemon=True)
        self._thread.start()

    def _run(self, restart: threading.Event) -> None:
        """Until `restart` (set by the next `follow`, or by `close` when the loop ends)."""
        import watchfiles

        folders = {path if path.is_dir() else path.parent for path in self.files}
        for changes in watchfiles.watch(*folders, stop_event=restart, recursive=False, debounce=50, rust_timeout=200):
            if any(Path(path).resolve() in self.files or Path(path).parent in self.files for _, path in changes):
                self.changed.set()

    def close(self) -> None:
        self._restart.set()
        if self._thread is not None:
            self._thread.join()


def watch(
    path: Path, output: Path | None, quiet: bool = False, stop: threading.Event | None = None, port: int | None = None
) -> int:
    """The loop; `port` serves the live page (live.py) on 127.0.0.1 (0: a free port)."""
    from ..models.load import load_pipeline
    from ..run.anchor import KeptAnchor
    from ..run.job import render_storyboard
    from ..run.render import CANCEL
    from ..storyboard import load_storyboard
    from .live import Status, serve

    stop = stop or threading.Event()
    watcher, pipes, status, kept = Watcher(), {}, Status(), KeptAnchor()
    server = serve(port, status) if port is not None else None  # the port is ours before anything loads
    if server is not None:
        print(f"live page: http://127.0.0.1:{server.server_address[1]}/", flush=True)
    token = CANCEL.set(lambda: watcher.changed.is_set() or stop.is_set())
    try:
        while not stop.is_set():
            watcher.changed.clear()
            try:
                board = load_storyboard(path)
                watcher.follow(named_files(board))
                target = output or board.output_dir
                if server is not None and status.folder != target:
                    target.mkdir(parents=True, exist_ok=True)
                    status.folder = target
                status.update(state="rendering", shot=None, error=None)
                model = json.dumps(board.spec.model.model_dump(mode="json", exclude={"lora"}), sort_keys=True)
                if model not in pipes:  # a new model block: the earlier pipe goes, and its anchor
                    pipes = {model: load_pipeline(board.spec.model, image_anchor=board.spec.anchor.image is not None)}
                    kept = KeptAnchor()
                result = render_storyboard(board, target, pipe=pipes[model], progress=status, kept=kept)
                status.update(state="done", shot=None, renders=status.value["renders"] + 1)
                if not quiet:
                    print(f"wrote {target}/ ({result.count} frames); watching {len(watcher.files)} files")
            except Cancelled:
                continue  # a save came in: start over at once
            except InvalidInput as error:  # the last good output stays as it is
                print("\n".join(map(printable, error.lines)), file=sys.stderr)
                status.update(state="error", error=error.lines[0])
                watcher.follow(watcher.files | {Path(path).resolve()})
            except FramegenError as error:
                print("\n".join(f"framegen: {printable(line)}" for line in error.lines), file=sys.stderr)
                status.update(state="error", error=f"framegen: {error.lines[0]}")
            while not (watcher.changed.wait(0.2) or stop.is_set()):
                pass
    finally:
        CANCEL.reset(token)
        watcher.close()
        if server is not None:
            server.shutdown()
    return 0
