"""Small real images for tests, written with OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_images(folder: Path, names: list[str], size: tuple[int, int] = (64, 48)) -> list[Path]:
    """Writes one image per name (format from its extension), each a different colour."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    paths = []
    for index, name in enumerate(names):
        image = np.zeros((height, width, 3), dtype=np.uint8)
        image[:, :] = ((index * 40) % 256, (index * 90) % 256, 200)
        cv2.putText(image, str(index), (4, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255,) * 3)
        path = folder / name
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    return paths
