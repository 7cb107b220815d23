"""The trainer's user-facing errors share one base, importable without torch, so the curate CLI can report
them in one line instead of a traceback."""


class TrainerError(Exception):
    """An error whose message names the file or recipe key and the fix."""
