"""Logos in the Wild (``LogosInTheWild-v2/data/``): one folder per brand search, each with Pascal-VOC-style
XML (one per image, e.g. ``img000117.xml``) and ``urls.txt``; the images themselves are not distributed::

    data/<brand>/urls.txt  data/<brand>/img000117.xml  [data/<brand>/img000117.jpg once downloaded]

Coordinates are Pascal VOC 1-based pixel indices (``VOC_ONE_BASED``): the authors describe the files as
"Pascal VOC style", and boxes touching the image border start at 1, never 0.

Images are looked up in the brand folder (``<xml stem>.jpg`` as the download scripts name them, or the
XML's ``<filename>``), then in each ``--images`` folder (``DIR/<brand>/`` or ``DIR/``). An image never
downloaded still gives an annotation-only sample (``ImageNotFoundError``, so ingest tags it
``missing_image``), its path being where the download scripts put it, so importing again after
downloading updates the same sample; ``ctx.notes['not_downloaded']`` lists ``{'image', 'url'}``.

``urls.txt`` lines (blank lines ignored) map to XML files by stem:

* ``ID<whitespace>URL`` as published: ``ID`` is the XML stem, or the stem without its ``img`` prefix
  (``000117`` -> ``img000117.xml``); ``ID`` may also be an image file name (``img000117.jpg``);
* a bare ``URL``: the stem of the URL path's last part if an XML has that stem, else by line order
  (the n-th non-blank line belongs to the n-th XML in name order).

URLs that match no XML are counted (``urls_without_annotation``).

Brand names carry annotator suffixes: ``-teilsichtbar`` / ``-partial`` (partly visible) are removed and set
``truncated=True``; ``-schriftzug`` / ``-schrift`` (lettering) become ``-text``. A renamed box keeps the name
as written in ``original_label`` (the same attribute ``curate labels --map`` sets, so ``--revert`` brings
back the names as the files write them); other spelling variants are left to ``curate labels``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import urlsplit

from curate import schema
from curate.boxes import PixelConvention
from curate.errors import AnnotationError, ImageNotFoundError, InvalidValueError
from curate.formats.files import basename_of, find_image_beside, is_image_name
from curate.formats.text_fields import find_folder
from curate.formats.records import BoxRecord, ReadContext, SampleRecord, SkippedFile
from curate.formats.voc_xml import read_voc_xml

NAME = "logos_in_the_wild"
CONVENTION = PixelConvention.VOC_ONE_BASED
URLS_FILE = "urls.txt"
PARTLY_VISIBLE_SUFFIXES = ("-teilsichtbar", "-partial")
LETTERING_SUFFIXES = ("-schriftzug", "-schrift")  # longest first: "-schrift" is a prefix of the other
TEXT_SUFFIX = "-text"
ID_PREFIX = "img"  # urls.txt gives 000117 for img000117.xml


def _is_brand_folder(folder: Path) -> bool:
    return (folder / URLS_FILE).is_file() and any(folder.glob("*.xml"))


def _is_data_folder(folder: Path) -> bool:
    return any(_is_brand_folder(child) for child in folder.iterdir() if child.is_dir())


def owns_subfolders(path: Path) -> bool:
    """True when ``path`` is the data folder itself: its brand subfolders are parts of one dataset, which a
    multi-source import must not take for separate sources (each alone looks like LabelImg XML)."""
    return _is_data_folder(path)


def brand_folders(path: Path) -> list[Path]:
    data = find_folder(path, _is_data_folder)
    if data is None:
        return []
    return sorted(c for c in data.iterdir()
                  if c.is_dir() and ((c / URLS_FILE).is_file() or any(c.glob("*.xml"))))


def detect(path: Path) -> str | None:
    folders = brand_folders(path)
    if not folders:
        return None
    return f"found Logos in the Wild brand folders with {URLS_FILE} and XML under {folders[0].parent}"


def count(path: Path, ctx: ReadContext) -> int:
    return sum(1 for folder in brand_folders(path) for _ in folder.glob("*.xml"))


def read(path: Path, ctx: ReadContext) -> Iterator[SampleRecord | SkippedFile]:
    folders = brand_folders(path)
    if not folders:
        raise FileNotFoundError(f"{path}: no brand folders with {URLS_FILE} and XML files found")
    for brand_dir in folders:
        yield from _read_brand_folder(brand_dir, ctx)


def _read_brand_folder(brand_dir: Path, ctx: ReadContext) -> Iterator[SampleRecord | SkippedFile]:
    xmls = sorted(brand_dir.glob("*.xml"))
    url_by_stem: dict[str, str] = {}
    if (brand_dir / URLS_FILE).is_file():
        yield from read_urls(brand_dir / URLS_FILE, [x.stem for x in xmls], url_by_stem, ctx)
    claimed: set[str] = set()
    for xml_path in xmls:
        record = _record_for_xml(xml_path, url_by_stem.get(xml_path.stem), ctx)
        if isinstance(record, SampleRecord):
            claimed.add(record.filepath)
        yield record
    for image in sorted(brand_dir.iterdir()):
        if is_image_name(image.name) and str(image.resolve()) not in claimed:
            yield SampleRecord(filepath=str(image.resolve()), source=ctx.source, source_format=NAME,
                               tags=[schema.TAG_UNLABELED])


def read_urls(urls_file: Path, xml_stems: Sequence[str], url_by_stem: dict[str, str],
              ctx: ReadContext) -> Iterator[SkippedFile]:
    """Fills ``url_by_stem`` (XML stem -> URL) from ``urls_file``; yields its unreadable lines."""
    lines = [(n, line) for n, line in enumerate(urls_file.read_text(errors="replace").splitlines(), 1)
             if line.strip()]
    known = set(xml_stems)
    for index, (line_no, line) in enumerate(lines):
        parts = line.split(None, 1)
        if len(parts) == 2:
            url, stem = parts[1].strip(), _stem_for_id(parts[0], known)
        elif "://" in parts[0]:
            url, stem = parts[0], _stem_for_bare_url(parts[0], index, xml_stems, known)
        else:
            yield SkippedFile(str(urls_file), InvalidValueError(
                str(urls_file), f"line {line_no}: url", f"{parts[0]!r} is neither `ID URL` nor a URL",
                "write the line as `ID<TAB>URL` or as a bare URL"))
            continue
        if stem is None:
            ctx.stats["urls_without_annotation"] += 1
        else:
            url_by_stem[stem] = url


def _stem_for_id(image_id: str, known: set[str]) -> str | None:
    stem = Path(image_id).stem if is_image_name(image_id) else image_id
    return next((s for s in (stem, f"{ID_PREFIX}{stem}") if s in known), None)


def _stem_for_bare_url(url: str, index: int, xml_stems: Sequence[str], known: set[str]) -> str | None:
    stem = Path(urlsplit(url).path).stem
    if stem in known:
        return stem
    return xml_stems[index] if index < len(xml_stems) else None


def harmonise_label(raw: str) -> tuple[str, bool]:
    """``(label, partly_visible)`` for a brand name as the annotators wrote it."""
    label, partly_visible = raw, False
    for suffix in PARTLY_VISIBLE_SUFFIXES:
        if label.lower().endswith(suffix):
            label, partly_visible = label[:-len(suffix)], True
            break
    for suffix in LETTERING_SUFFIXES:
        if label.lower().endswith(suffix):
            label = label[:-len(suffix)] + TEXT_SUFFIX
            break
    return label, partly_visible


def _harmonise(box: BoxRecord, ctx: ReadContext) -> None:
    label, partly_visible = harmonise_label(box.label)
    if partly_visible:
        box.attributes["truncated"] = True
        ctx.stats["partly_visible_boxes"] += 1
    if label != box.label:
        box.attributes[schema.ORIGINAL_LABEL] = box.label
        ctx.stats["labels_renamed"] += 1
        box.label = label


def _record_for_xml(xml_path: Path, url: str | None, ctx: ReadContext) -> SampleRecord | SkippedFile:
    try:
        ann = read_voc_xml(xml_path, CONVENTION)
    except AnnotationError as exc:
        image = _find_image(xml_path, None, ctx.image_dirs)
        if image is None:
            return SkippedFile(str(xml_path), exc)
        return SampleRecord(filepath=str(image.resolve()), source=ctx.source, source_format=NAME,
                            annotation_path=str(xml_path.resolve()), errors=[exc])
    for box in ann.boxes:
        _harmonise(box, ctx)
    errors = list(ann.errors)
    image = _find_image(xml_path, ann.filename, ctx.image_dirs)
    if image is None:
        image = xml_path.with_suffix(".jpg")
        ctx.stats["images_not_downloaded"] += 1
        ctx.note("not_downloaded", {"image": str(image.resolve()), "url": url})
        errors.append(ImageNotFoundError(
            str(xml_path), "filename", f"image {image.name!r} was never downloaded (URL: {url or 'unknown'})",
            f"download it into {xml_path.parent} or pass the image folder with --images"))
    return SampleRecord(filepath=str(image.resolve()), source=ctx.source, source_format=NAME,
                        annotation_path=str(xml_path.resolve()), annotation_digest=ann.digest,
                        boxes=ann.boxes, declared_size=ann.declared_size, errors=errors)


def _find_image(xml_path: Path, filename: str | None, image_dirs: Sequence[Path]) -> Path | None:
    brand_dir = xml_path.parent
    found = find_image_beside(brand_dir, xml_path.stem)
    if found is None and filename and (brand_dir / basename_of(filename)).is_file():
        found = brand_dir / basename_of(filename)
    for folder in image_dirs:
        for candidate_dir in (folder / brand_dir.name, folder):
            found = found or find_image_beside(candidate_dir, xml_path.stem)
    return found
