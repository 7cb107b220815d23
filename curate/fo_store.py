"""Bulk writes of imported samples into a FiftyOne dataset.

FiftyOne's ``add_samples`` builds a Python object per sample and label and managed ~520 samples/s here;
writing the same documents with one ``insert_many`` per batch is ~20x faster. The documents are built in
exactly the shape ``fo.Sample.to_mongo_dict()`` produces (tests load them back through FiftyOne's API),
and the fields are declared through FiftyOne's public schema API, so the App and every FiftyOne method
see an ordinary dataset. This module is the only place that knows that shape.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import bson
import fiftyone as fo
from fiftyone.core.odm.sample import _generate_rand  # FiftyOne's own `_rand` (used by take/shuffle)
from pymongo import InsertOne, UpdateOne

from curate import schema
from curate.boxes import edges_to_relative_xywh
from curate.formats.records import BoxRecord

# Documents per bulk_write: few round trips, small messages. Smaller batches only make an interrupted
# import lose less (tests set it low to interrupt an import mid-way).
WRITE_BATCH = int(os.environ.get("CURATE_WRITE_BATCH", "1000"))

_IMPORT_FIELDS = {
    schema.SOURCE: fo.StringField,
    schema.SOURCE_FORMAT: fo.StringField,
    schema.ANNOTATION_PATH: fo.StringField,
    schema.FINGERPRINT: fo.StringField,
    schema.DECLARED_WIDTH: fo.IntField,
    schema.DECLARED_HEIGHT: fo.IntField,
    schema.DECLARED_DEPTH: fo.IntField,
    schema.CONTENT_HASH: fo.StringField,
    schema.PERCEPTUAL_HASH: fo.StringField,
}
_DETECTION_ATTRIBUTES = {**{name: fo.BooleanField for name in schema.VOC_BOX_ATTRIBUTES},
                         schema.VOC_POSE: fo.StringField, schema.ORIGINAL_LABEL: fo.StringField}
# Tags the importer owns: recomputed on re-import; any other tag (a user's, clean's) is kept.
IMPORT_TAGS = frozenset({*schema.SPLIT_TAGS, schema.TAG_TRAINVAL, schema.TAG_UNLABELED,
                         schema.TAG_NEGATIVE, schema.TAG_QUERY, *schema.UNUSABLE_TAGS})


def load_or_create(name: str) -> fo.Dataset:
    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    dataset = fo.Dataset(name, persistent=True)
    dataset.media_type = "image"
    return dataset


def declare_import_fields(dataset: fo.Dataset) -> None:
    """Declare every field the importer writes, once, and make ``filepath`` unique."""
    existing = dataset.get_field_schema(flat=True)
    for name, field_type in _IMPORT_FIELDS.items():
        if name not in existing:
            dataset.add_sample_field(name, field_type)
    if schema.IMPORT_ERRORS not in existing:
        dataset.add_sample_field(schema.IMPORT_ERRORS, fo.ListField, subfield=fo.StringField)
    if schema.IMAGE_LABEL not in existing:
        dataset.add_sample_field(schema.IMAGE_LABEL, fo.EmbeddedDocumentField,
                                 embedded_doc_type=fo.Classification)
    if schema.GROUND_TRUTH not in existing:
        dataset.add_sample_field(schema.GROUND_TRUTH, fo.EmbeddedDocumentField,
                                 embedded_doc_type=fo.Detections)
    for name, field_type in _DETECTION_ATTRIBUTES.items():
        path = f"{schema.GROUND_TRUTH}.detections.{name}"
        if path not in existing:
            dataset.add_sample_field(path, field_type)
    if not dataset.get_index_information().get("filepath", {}).get("unique"):
        dataset.create_index("filepath", unique=True)  # a resumed import can never duplicate a sample


_FIELD_FOR_TYPE = {bool: fo.BooleanField, int: fo.IntField, float: fo.FloatField, str: fo.StringField}


def declare_box_attributes(dataset: fo.Dataset, attribute_types: dict[str, type]) -> None:
    """Declare reader-specific box attributes (e.g. BelgaLogos' ``ok``) so the App can filter on them."""
    existing = dataset.get_field_schema(flat=True)
    for name, python_type in attribute_types.items():
        path = f"{schema.GROUND_TRUTH}.detections.{name}"
        if path in existing:
            continue
        if python_type in _FIELD_FOR_TYPE:
            dataset.add_sample_field(path, _FIELD_FOR_TYPE[python_type])
        elif python_type in (list, tuple):
            dataset.add_sample_field(path, fo.ListField)


@dataclass(frozen=True)
class StoredSample:
    id: bson.ObjectId
    fingerprint: str | None
    tags: tuple[str, ...]
    source: str | None


def stored_samples(dataset: fo.Dataset) -> dict[str, StoredSample]:
    """filepath -> what the importer needs to know about the sample already there."""
    cursor = dataset._sample_collection.find(
        {}, {"filepath": 1, "tags": 1, schema.FINGERPRINT: 1, schema.SOURCE: 1})
    return {doc["filepath"]: StoredSample(doc["_id"], doc.get(schema.FINGERPRINT),
                                          tuple(doc.get("tags", ())), doc.get(schema.SOURCE))
            for doc in cursor}


def detections_doc(boxes: list[BoxRecord], width: int | None, height: int | None) -> dict:
    """The ``fo.Detections`` document for ``boxes`` (absolute edges) on a ``width x height`` image."""
    return {"_cls": "Detections", "detections": [_detection_doc(b, width, height) for b in boxes]}


def _detection_doc(box: BoxRecord, width: int | None, height: int | None) -> dict:
    doc = {"_id": bson.ObjectId(), "_cls": "Detection", "attributes": {}, "tags": [],
           "label": box.label, "bounding_box": None, **box.attributes}
    if width and height:
        doc["bounding_box"] = edges_to_relative_xywh(box.box, width, height)
    else:  # image size unknown (annotation-only sample): keep the pixels rather than lose the box
        doc[schema.PIXEL_BOX] = list(box.box)
    return doc


def classification_doc(label: str) -> dict:
    return {"_id": bson.ObjectId(), "_cls": "Classification", "attributes": {}, "tags": [], "label": label}


def image_metadata_doc(width: int, height: int, size_bytes: int, mime_type: str, channels: int) -> dict:
    return {"_cls": "ImageMetadata", "size_bytes": size_bytes, "mime_type": mime_type,
            "width": width, "height": height, "num_channels": channels}


class BatchWriter:
    """Buffers inserts and updates and writes them in bulk; ``flush()`` before reading back."""

    def __init__(self, dataset: fo.Dataset):
        self._dataset = dataset
        self._collection = dataset._sample_collection
        self._ops: list = []

    def insert(self, filepath: str, fields: dict, tags: list[str]) -> None:
        now = _now()
        doc = {"_id": bson.ObjectId(), "filepath": filepath, "tags": sorted(set(tags)),
               "metadata": None, "created_at": now, "last_modified_at": now, "_media_type": "image",
               "_rand": _generate_rand(), "_dataset_id": self._dataset._doc.id}
        doc.update({k: v for k, v in fields.items() if v is not None})
        self._add(InsertOne(doc))

    def update(self, stored: StoredSample, fields: dict, tags: list[str]) -> None:
        kept_tags = [t for t in stored.tags if t not in IMPORT_TAGS]
        new_values = {**fields, "tags": sorted({*kept_tags, *tags}), "last_modified_at": _now()}
        self._add(UpdateOne({"_id": stored.id}, {"$set": new_values}))

    def _add(self, op) -> None:
        self._ops.append(op)
        if len(self._ops) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        if self._ops:
            self._collection.bulk_write(self._ops, ordered=False)
            self._ops = []


def _now() -> dt.datetime:
    # FiftyOne stores naive UTC datetimes with millisecond precision (MongoDB's resolution).
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
