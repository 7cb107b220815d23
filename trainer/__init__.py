"""trainer: the SSD model family, losses, augmentation and the training engine.

Pure torch + albumentations. It never imports fiftyone or pymongo: it reads a manifest file written by
``curate`` (filepath, width, height, absolute xyxy boxes, labels, split, weight, sample id) and a recipe.
"""

import os as _os

# Before torch loads OpenMP: idle OpenMP threads otherwise busy-wait, which on a shared 2-core machine
# made training up to 8x slower (BENCHMARKS.md, Trainer). A user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
