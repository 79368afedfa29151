"""Maps as ``fo.Heatmap`` labels: 8-bit PNG files or inline arrays, written,
read back and removed."""
import os

import fiftyone as fo
import numpy as np
from PIL import Image

STORAGE = ("png", "inline")


def default_output_dir(dataset_name, run_key):
    """Where PNG maps go unless the user says otherwise:
    ``<fo.config.default_dataset_dir>/cam_maps/<dataset>/<run_key>``."""
    return os.path.join(fo.config.default_dataset_dir, "cam_maps", dataset_name, run_key)


def to_uint8(cam):
    """A [0, 1] float map as uint8 in [0, 255]."""
    return np.clip(np.round(cam * 255.0), 0, 255).astype(np.uint8)


def make_heatmap(cam, storage, path=None, **attributes):
    """Builds one ``fo.Heatmap``.

    Args:
        cam: a (H, W) float map in [0, 1], in the original image's frame
        storage: ``"png"`` (written to ``path``, referenced by ``map_path``) or
            ``"inline"`` (the uint8 array in ``map``)
        path: the PNG path, for ``"png"``
        **attributes: scalar attributes stored on the label (target, scores)

    Returns:
        an ``fo.Heatmap`` with ``range=[0, 255]``
    """
    arr = to_uint8(cam)
    if storage == "inline":
        return fo.Heatmap(map=arr, range=[0, 255], **attributes)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # fast compression: maps are small, and writing is on the hot path
    Image.fromarray(arr).save(path, compress_level=1)
    return fo.Heatmap(map_path=path, range=[0, 255], **attributes)


def load_map(heatmap):
    """A stored Heatmap's map as a float array in [0, 1] (PNG or inline)."""
    if heatmap.map is not None:
        arr = np.asarray(heatmap.map, dtype=np.float64)
    else:
        with Image.open(heatmap.map_path) as img:
            arr = np.asarray(img, dtype=np.float64)
    lo, hi = heatmap.range if heatmap.range else (0.0, 255.0)
    return (arr - lo) / (hi - lo) if hi > lo else arr


def remove_map_files(paths):
    """Deletes map files and the folders they leave empty."""
    folders = set()
    for path in paths:
        if path and os.path.isfile(path):
            os.remove(path)
            folders.add(os.path.dirname(path))
    for folder in sorted(folders, key=len, reverse=True):
        try:
            os.removedirs(folder)  # stops at the first non-empty parent
        except OSError:
            pass
