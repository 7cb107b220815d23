"""trainer: the SSD model family, losses, augmentation and the training engine.

Pure torch + albumentations. It never imports fiftyone or pymongo: it reads a manifest file written by
``curate`` (filepath, width, height, absolute xyxy boxes, labels, split, weight, sample id) and a recipe.
"""
