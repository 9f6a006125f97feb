"""How many objects an annotation counts for in performance figures (interpolation counted).

As in CVAT's analytics: a tag or a shape is one object, a skeleton counts its points, and a
track counts every frame it is visible on, keyframes and interpolated frames alike, up to the
end of its job.
"""

from __future__ import annotations

from core.annotations import Shape, Tag, Track


def object_frames(obj: Tag | Shape | Track, stop_frame: int) -> int:
    if isinstance(obj, Track):
        if obj.elements:
            return sum(visible_frames(element, stop_frame) for element in obj.elements)
        return visible_frames(obj, stop_frame)
    if isinstance(obj, Shape) and obj.elements:
        return len(obj.elements)
    return 1


def visible_frames(track: Track, stop_frame: int) -> int:
    """Frames from each visible keyframe to the next keyframe, and from the last one (if
    visible) to `stop_frame` included."""
    keyframes = sorted(track.shapes, key=lambda shape: shape.frame)
    if not keyframes:
        return 0
    count = 0
    for previous, current in zip(keyframes, keyframes[1:], strict=False):
        if not previous.outside:
            count += current.frame - previous.frame
    last = keyframes[-1]
    if not last.outside:
        count += max(0, stop_frame - last.frame + 1)
    return count
