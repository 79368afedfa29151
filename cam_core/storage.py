"""Writing maps as ``fo.Heatmap`` labels: 8-bit PNG files or inline arrays."""
import os

import numpy as np
from PIL import Image

STORAGE = ("png", "inline")


def default_output_dir(dataset_name, run_key):
    """Where PNG maps go unless the user says otherwise:
    ``<fo.config.default_dataset_dir>/cam_maps/<dataset>/<run_key>``."""
    import fiftyone as fo

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
    import fiftyone as fo

    arr = to_uint8(cam)
    if storage == "inline":
        return fo.Heatmap(map=arr, range=[0, 255], **attributes)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # fast compression: maps are small, and writing is on the hot path
    Image.fromarray(arr).save(path, compress_level=1)
    return fo.Heatmap(map_path=path, range=[0, 255], **attributes)


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
