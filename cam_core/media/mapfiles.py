"""Maps as ``fo.Heatmap`` labels: 8-bit PNG files or inline arrays, written,
read back and removed; where an App user may have them written."""
import os
import re

import fiftyone as fo
import numpy as np
from PIL import Image

from ..errors import CamArgumentError
from .mapdirs import MapFolders, MapWriteError

STORAGE = ("png", "inline")

OUTPUT_ROOT_ENV = "FIFTYONE_CAM_OUTPUT_ROOT"


def default_output_dir(dataset, run_key):
    """Where PNG maps go unless the user says otherwise:
    ``<fo.config.default_dataset_dir>/cam_maps/<name>-<dataset id>/<run_key>``.

    The dataset's name is only a readable hint: FiftyOne accepts any name
    (``../../x`` included), so it is reduced to letters, digits, ``.``, ``_``
    and ``-`` (at most 64 characters), and the dataset's id makes the folder
    its own (two databases may hold datasets of one name). Runs recorded
    before keep the folder they recorded.

    Args:
        dataset: a ``fo.Dataset`` (or a view of it), or a dataset's name
        run_key: the run's key

    Returns:
        an absolute path, always inside ``<default_dataset_dir>/cam_maps``
    """
    if isinstance(dataset, str):
        import fiftyone.core.odm as foo

        doc = foo.get_db_conn().datasets.find_one({"name": dataset}, {"_id": 1})
        if doc is None:
            raise CamArgumentError("dataset", f"there is no dataset named {dataset!r}")
        name, dataset_id = dataset, str(doc["_id"])
    else:
        root = dataset._root_dataset
        name, dataset_id = root.name, str(root._doc.id)
    base = os.path.abspath(os.path.join(fo.config.default_dataset_dir, "cam_maps"))
    return os.path.join(base, f"{_safe_part(name)}-{dataset_id}", _safe_part(run_key))


def _safe_part(text, limit=64):
    """``text`` as one folder name: other characters become ``_``; no leading dot."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).lstrip(".")[:limit] or "_"


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


def encode_png(arr):
    """A uint8 map as PNG bytes, with fast settings: maps are smooth, and
    encoding is on the hot path (RLE is faster than zlib's default and as small for them)."""
    import cv2

    ok, data = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                          cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
    if not ok:
        raise MapWriteError(0, "could not encode a map as PNG")
    return data.tobytes()


def write_png(folders, path, arr):
    """Writes a uint8 map as PNG at ``path`` (``<output_dir>/<field>/<name>``)
    through the run's :class:`cam_core.media.mapdirs.MapFolders`, whole or not
    at all (a temporary name, then renamed: a crash or a full disk leaves no
    truncated file under ``path``)."""
    folders.write(os.path.basename(os.path.dirname(path)), os.path.basename(path), encode_png(arr))


def check_writable(output_dir):
    """Checks, before a run is recorded, that map files can be written under
    ``output_dir`` (creating it when missing).

    Returns:
        whether the folder was created here

    Raises:
        CamArgumentError: (``output_dir``) naming the folder and the system's reason
    """
    created = not os.path.isdir(output_dir)
    probe = f".cam_core_write_test.{os.getpid()}"
    try:
        with MapFolders(output_dir, []) as folders:
            folders.probe(probe, b"\0" * 4096)
    except OSError as e:
        raise CamArgumentError(
            "output_dir", f"map files cannot be written under output_dir '{output_dir}': {e.strerror or e}. "
                          f"Choose a writable folder (output_dir=...) or storage='inline'") from None
    return created


def sweep_unreferenced(output_dir, fields, referenced, only_ids=None):
    """Deletes a run's map files that no sample references (left by a crash
    between writing files and the database update); returns how many.
    ``fields`` are the field folders the run may sweep (those no other run
    writes into). With ``only_ids``, only files of those samples are
    considered (a shard must not touch the files other shards are writing)."""
    referenced = set(referenced)
    with MapFolders(output_dir, fields, create=False) as folders:
        stale = [folders.path(f, n) for f in folders.fields() for n in folders.names(f)]
        stale = [p for p in stale if p not in referenced]
        if only_ids is not None:
            only_ids = set(only_ids)
            stale = [p for p in stale if os.path.basename(p).split(".", 1)[0] in only_ids]
        return len(folders.remove(stale))


# How maps are stored: the App draws the value 0 transparent, so 0 is kept
# for what the model never saw (outside its crop) and a map's values in [0, 1]
# are stored as 1..255, with the Heatmap's range [1, 255]: the rest is visible,
# an all-zero map included. Maps stored before (range [0, 255]) read the same way.
STORED_RANGE = (1, 255)


def to_float(arr, lo=STORED_RANGE[0], hi=STORED_RANGE[1]):
    """Stored values as a float map in [0, 1]: ``(v - lo) / (hi - lo)``;
    values below ``lo`` (outside what the model saw) are 0."""
    arr = np.asarray(arr, dtype=np.float64)
    return np.clip((arr - lo) / (hi - lo), 0.0, None) if hi > lo else arr


def load_map(heatmap):
    """A stored Heatmap's map as a float array in [0, 1] (PNG or inline)."""
    if heatmap.map is not None:
        arr = np.asarray(heatmap.map, dtype=np.float64)
    else:
        with Image.open(heatmap.map_path) as img:
            arr = np.asarray(img, dtype=np.float64)
    lo, hi = heatmap.range if heatmap.range else (0.0, 255.0)
    return to_float(arr, lo, hi)
