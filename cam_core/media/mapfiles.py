"""Maps as ``fo.Heatmap`` labels: 8-bit PNG files or inline arrays, written,
read back and removed; where an App user may have them written."""
import os
import re

import fiftyone as fo
import numpy as np
from PIL import Image

from ..errors import CamArgumentError

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


class MapWriteError(OSError):
    """A map file that could not be written (disk full, read-only, not a
    folder), with the path in its message."""


def write_png(arr, path):
    """Writes a uint8 map as PNG, whole or not at all: to a temporary name
    in the same folder, then renamed (a crash or a full disk leaves no
    truncated file under ``path``)."""
    import cv2

    # fast settings: maps are smooth, and encoding is on the hot path (RLE is
    # faster than zlib's default and as small for them)
    ok, data = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                          cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
    if not ok:
        raise MapWriteError(0, f"could not encode map file '{path}'")
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data.tobytes())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise MapWriteError(e.errno, f"could not write map file '{path}': {e.strerror or e}") from e


def check_writable(output_dir):
    """Checks, before a run is recorded, that map files can be written under ``output_dir``.

    Raises:
        CamArgumentError: (``output_dir``) naming the folder and the system's reason
    """
    probe = os.path.join(output_dir, f".cam_core_write_test.{os.getpid()}")
    try:
        os.makedirs(output_dir, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
        os.remove(probe)
    except OSError as e:
        raise CamArgumentError(
            "output_dir", f"map files cannot be written under output_dir '{output_dir}': {e.strerror or e}. "
                          f"Choose a writable folder (output_dir=...) or storage='inline'") from None


def _is_map_name(name):
    """Names cam_core writes in a run's field folders: ``<sample id>.png``
    and its temporary ``<sample id>.png.<pid>.tmp``."""
    stem = name.split(".", 1)[0]
    return len(stem) == 24 and all(c in "0123456789abcdef" for c in stem) and (
        name.endswith(".png") or name.endswith(".tmp"))


def run_map_files(output_dir, fields):
    """Every file cam_core may have written for a run's fields under
    ``output_dir`` (``<output_dir>/<field>/<sample id>.png`` and temporaries);
    nothing else in those folders is touched."""
    found = []
    for f in fields:
        folder = os.path.join(output_dir, f)
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found += [os.path.join(folder, n) for n in names if _is_map_name(n)]
    return found


def sweep_unreferenced(output_dir, fields, referenced, only_ids=None):
    """Deletes a run's map files that no sample references (left by a crash
    between writing files and the database update); returns how many.
    With ``only_ids``, only files of those samples are considered (a shard
    must not touch the files other shards are writing)."""
    referenced = set(referenced)
    stale = [p for p in run_map_files(output_dir, fields) if p not in referenced]
    if only_ids is not None:
        only_ids = set(only_ids)
        stale = [p for p in stale if os.path.basename(p).split(".", 1)[0] in only_ids]
    remove_map_files(stale)
    return len(stale)


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
