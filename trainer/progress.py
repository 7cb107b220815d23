"""A per-epoch progress bar (rich): loss, lr, img/s, ETA. Silent when disabled or not on a terminal."""

from __future__ import annotations

import sys

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class EpochProgress:
    """``with EpochProgress(epoch, epochs, images, enabled=...) as on_batch:`` then ``on_batch(n, stats)``."""

    def __init__(self, epoch: int, epochs: int, images: int, *, enabled: bool | None):
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.description = f"epoch {epoch}/{epochs}"
        self.images = images
        self._progress = None
        self._task = None

    def __enter__(self):
        if not self.enabled:
            return None
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[status]}"), TimeRemainingColumn())
        self._progress.__enter__()
        self._task = self._progress.add_task(self.description, total=self.images, status="")
        return self._on_batch

    def _on_batch(self, batch_images: int, stats) -> None:
        speed = self._progress.tasks[0].speed or 0.0
        status = f"loss {stats.loss / max(stats.images, 1):.3f}  lr {stats.lr:.2e}  {speed:.1f} img/s"
        self._progress.update(self._task, advance=batch_images, status=status)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
