"""Label rules that need no server: skeleton svg node ids."""

from __future__ import annotations

import itertools

from core.labels import LabelInput, build_labels, svg_with_node_names

SVG = (
    '<line data-type="edge" data-node-from="1" data-node-to="2"></line>'
    '<circle data-type="element node" data-node-id="1" data-label-name="head"></circle>'
    '<circle data-type="element node" data-node-id="2" data-label-name="hand"></circle>'
)


def test_skeleton_svg_names_become_sublabel_ids_and_back() -> None:
    counter = itertools.count(100)
    (skeleton,) = build_labels(
        [
            LabelInput(
                name="person",
                type="skeleton",
                svg=SVG,
                sublabels=[LabelInput(name="head"), LabelInput(name="hand")],
            )
        ],
        lambda _: next(counter),
    )
    ids = {sub.name: sub.id for sub in skeleton.sublabels}
    assert f'data-label-id="{ids["head"]}"' in skeleton.svg
    assert f'data-label-id="{ids["hand"]}"' in skeleton.svg
    assert "data-label-name" not in skeleton.svg
    assert svg_with_node_names(skeleton.svg, skeleton.sublabels) == SVG
    assert all(sub.type == "points" and sub.has_parent for sub in skeleton.sublabels)
