"""Maps as ``fo.Heatmap`` labels: 8-bit PNG files or inline arrays, written,
read back and removed; where an App user may have them written."""
import os

import fiftyone as fo
import numpy as np
from PIL import Image

from ..errors import CamArgumentError

STORAGE = ("png", "inline")

OUTPUT_ROOT_ENV = "FIFTYONE_CAM_OUTPUT_ROOT"


def default_output_dir(dataset_name, run_key):
    """Where PNG maps go unless the user says otherwise:
    ``<fo.config.default_dataset_dir>/cam_maps/<dataset>/<run_key>``."""
    return os.path.join(fo.config.default_dataset_dir, "cam_maps", dataset_name, run_key)


def output_root(root=None):
    """The folder under which the App's users may choose an output directory:
    ``root`` when given (the operators pass the plugin secret
    ``FIFTYONE_CAM_OUTPUT_ROOT``), else the environment variable
    ``FIFTYONE_CAM_OUTPUT_ROOT``, else ``fo.config.default_dataset_dir``."""
    return root or os.environ.get(OUTPUT_ROOT_ENV) or fo.config.default_dataset_dir


def check_output_dir(output_dir, root=None):
    """Checks an output directory that came from the App (a user of the App
    must not have files written anywhere the server can write). Python
    callers of :func:`cam_core.compute_cams` are not checked.

    Args:
        output_dir: an absolute path, or one relative to the root; None or
            ``""`` means the default (:func:`default_output_dir`)
        root (None): the allowed root (see :func:`output_root`)

    Returns:
        the resolved path (symlinks followed, ``..`` removed), or None for the default

    Raises:
        CamArgumentError: (``output_dir``) when the path is not a string or,
            resolved, does not lie under the resolved root
    """
    if output_dir is None or output_dir == "":
        return None
    base = os.path.realpath(os.path.expanduser(output_root(root)))
    if not isinstance(output_dir, str):
        raise CamArgumentError("output_dir", f"output_dir must be a folder path; got {output_dir!r}")
    try:
        # realpath follows every symlink that exists, so a link inside the root
        # that points outside resolves outside, as does any '..'
        resolved = os.path.realpath(os.path.join(base, output_dir))
    except (ValueError, OSError) as e:  # an embedded NUL, a link loop
        raise CamArgumentError("output_dir", f"output_dir {output_dir!r} is not a usable path: {e}") from None
    if os.path.commonpath([resolved, base]) != base:
        raise CamArgumentError(
            "output_dir",
            f"output_dir {output_dir!r} resolves to '{resolved}', outside the allowed root '{base}': choose a folder "
            f"under it (a relative path is taken from it). The root is set by {OUTPUT_ROOT_ENV} (environment or "
            f"plugin secret); by default it is FiftyOne's default_dataset_dir",
        )
    return resolved


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
