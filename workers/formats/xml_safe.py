"""Reading untrusted XML with lxml: no entities, no DTD loading, no network, bounded trees.

`iter_children` streams a document and yields each child of the root once it is complete,
freeing it afterwards, so a large annotations file is never held as one tree. `feed_events`
hands the same document to a parser target (lxml's ``start(tag, attrib)`` / ``data`` /
``end`` callbacks) instead: no tree and no element objects at all, for readers that want
speed. Either way a DOCTYPE that declares entities or points at an external DTD is refused
before any element is handed out (billion laughs, external entities); malformed XML becomes
a `FormatError` with its line.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Protocol

from lxml import etree

from workers.formats.dataset import FormatError

MAX_DEPTH = 256
"""libxml2's nesting limit without ``huge_tree``, which it enforces only when it builds a
tree: a parser target must refuse deeper elements itself."""

_SAFE = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


class ParserTarget(Protocol):
    def start(self, tag: str, attrib: dict[str, str]) -> None: ...

    def data(self, text: str) -> None: ...

    def end(self, tag: str) -> None: ...

    def close(self) -> object: ...


def iter_children(data: bytes, root_tag: str) -> Iterator[etree._Element]:
    """Yield each complete child element of the document's root (named ``root_tag``)."""
    context = etree.iterparse(io.BytesIO(data), events=("start", "end"), **_SAFE)
    depth = 0
    try:
        for event, element in context:
            if event == "start":
                if depth == 0:
                    _check_document(element, root_tag)
                depth += 1
                continue
            depth -= 1
            if depth == 1:
                yield element
                _release(element)
    except etree.XMLSyntaxError as error:
        raise FormatError(f"the XML is malformed: {error}") from error


def feed_events(data: bytes, root_tag: str, target: ParserTarget) -> None:
    """Check the document's prolog and root as `iter_children` does, then parse it into
    ``target``'s callbacks (with the same parser settings; ``target`` must refuse elements
    nested deeper than `MAX_DEPTH`)."""
    first = etree.iterparse(io.BytesIO(data), events=("start",), **_SAFE)
    parser = etree.XMLParser(target=target, **_SAFE)
    try:
        _check_document(next(iter(first))[1], root_tag)
        parser.feed(data)
        parser.close()
    except (etree.XMLSyntaxError, StopIteration) as error:
        raise FormatError(f"the XML is malformed: {error}") from error


def _check_document(root: etree._Element, root_tag: str) -> None:
    docinfo = root.getroottree().docinfo
    if docinfo.system_url or docinfo.public_id:
        raise FormatError("the XML refers to an external DTD, which is not allowed")
    dtd = docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise FormatError("the XML declares entities, which are not allowed")
    if root.tag != root_tag:
        raise FormatError(f"the XML root is <{root.tag}>, not <{root_tag}>")


def _release(element: etree._Element) -> None:
    element.clear(keep_tail=False)
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]
