"""``curate synth KIND OUT``: synthetic detection sets written as folders ``curate import`` reads."""

from __future__ import annotations

from pathlib import Path

import typer

KINDS = ("logos", "mnist", "cifar")


def synth_command(
    kind: str = typer.Argument(..., help="logos (LabelImg layout), mnist (MNIST-detection, VOC layout) or "
                               "cifar (CIFAR-like objects, VOC layout)."),
    out: Path = typer.Argument(..., help="Folder to write."),
    images: int = typer.Option(1000, "--images", min=1),
    seed: int = typer.Option(0, "--seed"),
    mnist_dir: Path = typer.Option(None, "--mnist", help="Folder with the MNIST idx/CSV files (mnist only); "
                                   "`--download` fetches them there."),
    download: bool = typer.Option(False, "--download", help="Download MNIST into --mnist first (online)."),
) -> None:
    """Generate a synthetic dataset (seed 003's MNIST-detection, seed 000's CIFAR-like, or brand marks)."""
    from curate.cli.render import console
    from curate.errors import CurateError
    from curate.progress import track

    if kind not in KINDS:
        raise CurateError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "logos":
        from curate.synth import write_labelimg_folder

        write_labelimg_folder(out, images, seed=seed)
    elif kind == "cifar":
        from curate.synth_digits import iter_cifar_like_detection

        for _ in track(iter_cifar_like_detection(out, images, seed=seed), total=images, description="cifar"):
            pass
    else:
        _mnist(out, images, seed, mnist_dir, download, track)
    console.print(f"wrote {images} images to {out}; next: `curate import {out}`")


def _mnist(out: Path, images: int, seed: int, mnist_dir: Path | None, download: bool, track) -> None:
    from curate.errors import CurateError
    from curate.mnist import download_mnist, load_mnist
    from curate.synth_digits import iter_mnist_detection

    if mnist_dir is None:
        raise CurateError("mnist needs --mnist DIR (the MNIST files; add --download to fetch them)")
    if download:
        download_mnist(mnist_dir)
    digits, labels = load_mnist(mnist_dir, "train")
    for _ in track(iter_mnist_detection(out, images, digits=digits, labels=labels, seed=seed), total=images,
                   description="mnist-detection"):
        pass
