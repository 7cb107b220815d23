"""``python -m trainer RECIPE --manifest FILE --out DIR [--resume]``: train without curate or MongoDB.

Also what ``curate train`` runs (in a child process, so DataLoader workers never inherit a database
client) and what ``torchrun --nproc_per_node=N -m trainer ...`` runs for distributed training.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from curate.recipe import RecipeError, load_recipe
from trainer.checkpoint import CheckpointError
from trainer.data import ManifestError
from trainer.engine import TrainingDiverged
from trainer.run import run_training
from trainer.weights import PretrainedWeightsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--manifest", required=True, help="JSON Lines manifest written by curate")
    parser.add_argument("--out", required=True, help="run folder (checkpoints, metrics, curves)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = run_training(load_recipe(args.recipe), args.manifest, args.out, resume=args.resume,
                              progress=False if args.no_progress else None)
    except (RecipeError, ManifestError, CheckpointError, TrainingDiverged, PretrainedWeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        print(f"trained {result.epochs_run} epochs; best {result.best_score}; run folder {result.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
