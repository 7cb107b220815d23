"""Every FiftyOne field, tag and ``dataset.info`` key that stages exchange, named once.

Stages import these names; no other module spells a field name as a string literal.
"""

from __future__ import annotations

# --- sample fields -------------------------------------------------------------------------------
GROUND_TRUTH = "ground_truth"  # fo.Detections; None = never annotated, [] = annotated, no objects
SOURCE = "source"  # str: the dataset the sample came from (folder name or --source)
SOURCE_FORMAT = "source_format"  # str: reader that produced it ("voc", "labelimg", ...)
ANNOTATION_PATH = "annotation_path"  # str: absolute path of the annotation file, None if unlabeled
FINGERPRINT = "import_fingerprint"  # str: hash of annotation bytes + image size/mtime (idempotency)
DECLARED_WIDTH = "declared_width"  # int: <size><width> written in the annotation file
DECLARED_HEIGHT = "declared_height"  # int: <size><height> written in the annotation file
DECLARED_DEPTH = "declared_depth"  # int: <size><depth> written in the annotation file
IMAGE_LABEL = "image_label"  # fo.Classification: an image-level class without boxes (query images)
IMPORT_ERRORS = "import_errors"
CLEAN_FINDINGS = "clean_findings"  # list[str] "rule: measured value", on samples and on boxes
CLEAN_BACKUP = "clean_backup"  # dict: ground_truth before curate clean first touched it (for --undo)  # list[str]: what went wrong with this sample at import
CONTENT_HASH = "content_hash"  # str: SHA-1 of the image file (exact duplicates)
PERCEPTUAL_HASH = "perceptual_hash"  # str: 64-bit dHash as 16 hex digits (near duplicates)
EXACT_DUPLICATE_GROUP = "exact_duplicate_group"  # str: group id shared by identical files, else None
NEAR_DUPLICATE_GROUP = "near_duplicate_group"  # str: group id shared by near-identical images, else None
# The real image size lives in FiftyOne's own `metadata` (fo.ImageMetadata), read from the file header.
METADATA = "metadata"

# --- per-box attributes on ground_truth detections ------------------------------------------------
VOC_BOX_ATTRIBUTES = ("difficult", "truncated", "occluded")  # bool
VOC_POSE = "pose"  # str
PIXEL_BOX = "pixel_box"  # absolute edges xyxy, only on boxes whose image size is unknown (annotation-only)
ORIGINAL_LABEL = "original_label"  # str: the label as imported, set when `curate labels --map` renames

# --- sample tags ---------------------------------------------------------------------------------
SPLIT_TAGS = ("train", "val", "test")
TAG_TRAINVAL = "trainval"  # listed in trainval.txt but in neither train.txt nor val.txt
TAG_UNLABELED = "unlabeled"  # image with no annotation file
TAG_NEGATIVE = "negative"  # a background image the source declares as such (e.g. FlickrLogos-32 no-logo)
TAG_QUERY = "query"  # a retrieval query image (FlickrLogos-27): one logo, image-level label, no boxes
TAG_MISSING_IMAGE = "missing_image"  # annotation whose image file is absent (annotation-only sample)
TAG_UNREADABLE_IMAGE = "unreadable_image"  # image whose header cannot be parsed
TAG_IMPORT_ERROR = "import_error"  # some boxes of the annotation could not be read
TAG_QUARANTINE = "quarantine"  # curate clean: kept out of training views (nothing is deleted)
TAG_HAS_EXCLUDED_CLASS = "has_excluded_class"  # holds a box of a class not kept: never a negative
ISSUE_TAG_PREFIX = "issue:"  # curate clean: "issue:<rule>" on samples and on boxes (label tags)
BOX_TAG_EXCLUDED_CLASS = "excluded_class"  # label tag: a box of a class top-k / --classes does not keep
TAG_BALANCED = "balanced"  # curate balance --select: the KL-optimal subset; training uses only it
TAG_HARD_NEGATIVE = "hard_negative"  # curate negatives --mine chose it; balance leaves its negative_selected alone
TAG_NEGATIVE_SELECTED = "negative_selected"  # curate balance --negatives chose this background image
SAMPLE_WEIGHT = "sample_weight"  # float: curate balance --weights; the manifest passes it to the sampler
# Samples with any of these tags must never reach a training view or be picked as a negative.
UNUSABLE_TAGS = (TAG_MISSING_IMAGE, TAG_UNREADABLE_IMAGE, TAG_IMPORT_ERROR)

# --- dataset.info keys ---------------------------------------------------------------------------
INFO_IMPORT_REPORTS = "curate_import_reports"  # list of import reports (dicts), newest last
INFO_DUPLICATES = "curate_duplicates"  # duplicate-group counts from the last import
INFO_LABEL_MAP = "curate_label_map"  # dict original label -> label: active mapping, applied on import
INFO_LABEL_HISTORY = "curate_label_history"  # list of applied mappings and reverts
INFO_CLEAN = "curate_clean"  # the last clean run: time, thresholds, report
