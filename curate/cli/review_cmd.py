"""``curate review DATASET``: the FiftyOne App on the failure views."""

from __future__ import annotations

import typer


def review_command(
    dataset: str = typer.Argument(..., help="Dataset evaluated by `curate evaluate`."),
    eval_key: str = typer.Option("eval", "--eval-key", help="Key the evaluation used: its views are KEY-..."),
    port: int = typer.Option(5151, "--port", min=1, max=65535, help="Port of the App, on 127.0.0.1."),
    view: str = typer.Option(None, "--view", help="Saved view to open (default: KEY-worst)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Only print the URLs (headless machine, SSH)."),
) -> None:
    """Serve the FiftyOne App on 127.0.0.1 opened on the failure views; Ctrl-C stops it.

    Every saved failure view is printed with its sample count and its own URL. From another machine:
    `ssh -L PORT:127.0.0.1:PORT host`, then open the URL there."""
    from curate.cli.render import console
    from curate.review import serve_until_stopped

    def announce(review) -> None:
        width = max((len(v.name) for v in review.views), default=0)
        for saved in review.views:
            console.print(f"  {saved.name:<{width}}  {saved.samples:>6} {_samples(saved.samples)}  "
                          f"{review.url(saved)}", soft_wrap=True, highlight=False)
        url = review.url(review.opened)
        opened = review.opened
        console.print(f"FiftyOne App: {url}  (view {opened.name}, {opened.samples} {_samples(opened.samples)}; "
                      "Ctrl-C to stop)", soft_wrap=True, highlight=False)
        if not no_browser:
            import webbrowser

            webbrowser.open(url, new=2)

    reason = serve_until_stopped(dataset, announce, eval_key=eval_key, port=port, view=view)
    console.print(f"App stopped ({reason})", highlight=False)


def _samples(count: int) -> str:
    return "sample" if count == 1 else "samples"
