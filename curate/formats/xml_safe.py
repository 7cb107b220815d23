"""Parsing untrusted XML: no entities, no DTD, no network, no huge trees.

Annotation files come from strangers. A file that declares a DTD or an entity is rejected before any
parsing, so neither an external entity (XXE: reading /etc/passwd into a label) nor an entity expansion
("billion laughs") can happen. LabelImg and the VOC devkit never write a DTD, so nothing real is lost.
"""

from __future__ import annotations

import re

from lxml import etree

from curate.errors import MalformedXMLError, UnsafeXMLError

_DTD_OR_ENTITY = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DTD_OR_ENTITY_TEXT = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_WIDE_SNIFF_BYTES = 200  # NUL bytes this early mean a UTF-16/32 file

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)

UNSAFE_FIX = "remove the <!DOCTYPE>/<!ENTITY> declarations; annotation files need none"


def _declares_dtd(data: bytes) -> bool:
    if _DTD_OR_ENTITY.search(data):
        return True
    if data[:2] in _UTF16_BOMS or b"\x00" in data[:_WIDE_SNIFF_BYTES]:
        return any(_DTD_OR_ENTITY_TEXT.search(data.decode(encoding, errors="ignore"))
                   for encoding in ("utf-16", "utf-16-le", "utf-16-be"))
    return False


def parse_xml(data: bytes, path: str) -> etree._Element:
    """Root element of ``data``, or a typed error naming ``path``."""
    if _declares_dtd(data):
        raise UnsafeXMLError(path, "<!DOCTYPE>", "the file declares a DTD or entities, which are "
                             "refused (XXE / entity-expansion protection)", UNSAFE_FIX)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MalformedXMLError(path, "", f"not well-formed XML ({exc})",
                                "open the file in a text editor or re-save it from LabelImg") from None
    if root is None:
        raise MalformedXMLError(path, "", "empty document", "delete the file or re-save it from LabelImg")
    if root.getroottree().docinfo.internalDTD is not None:  # e.g. a UTF-16 file the byte scan missed
        raise UnsafeXMLError(path, "<!DOCTYPE>", "the file declares a DTD", UNSAFE_FIX)
    return root
