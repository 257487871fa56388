"""What the CLI shows while it works: rich progress bars on stderr."""

from __future__ import annotations

import sys


def show_progress(args) -> bool:
    """Progress bars go to a terminal; off one (a log, CI) stderr carries only errors and
    warnings, unless --progress asks for them."""
    return args.progress or (not args.quiet and sys.stderr.isatty())


class RichProgress:
    """Two bars on stderr: images done, and the current image's denoising steps."""

    def __init__(self, images: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description:>16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.images = self.bar.add_task("images", total=images)
        self.steps = self.bar.add_task("steps", total=1)
        self.started = 0

    def image(self, name: str, total_steps: int, count: int = 1) -> None:
        """`count` images start now (a batch of frames)."""
        if not self.started:  # shown from the first image on, after validation and loading
            self.bar.start()
        self.bar.update(self.images, completed=self.started)
        self.bar.reset(self.steps, total=total_steps, description=name[:16])
        self.started += count

    def step(self, step: int) -> None:
        self.bar.update(self.steps, completed=step)
        if step == self.bar.tasks[self.steps].total:
            self.bar.update(self.images, completed=self.started)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.started:
            self.bar.stop()


def quiet_libraries() -> None:
    """framegen shows its own progress; the libraries' loading bars go."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
