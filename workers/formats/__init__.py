"""Annotation import/export formats (CVAT XML, COCO) over a neutral in-memory dataset."""
