"""cam_core: class activation maps for FiftyOne datasets.

The engine of the plugin, usable from Python without the App::

    import cam_core
    cam_core.compute_cams(dataset, "timm:deit_tiny_patch16_224", methods=["gradcam", "eigencam"])

The top level holds what a user calls: compute a run (:func:`compute_cams`,
or :func:`queue_cams` for delegated workers), follow it (:func:`run_status`,
:func:`resume_run`, :func:`list_cam_runs`, :func:`show_run`), explain one
image (:func:`explain`, :func:`save_explanation`), score, sort and summarize
(:func:`score_regions`, :func:`sort_by_score`, :func:`sort_objects_by_score`,
:func:`summarize_run`), read a map (:func:`load_map`), clean up
(:func:`remove_orphaned_maps`), describe, load and register models, the
method table and the error type. Three modules hold the rest:

- :mod:`cam_core.checks`: the forms' argument checks, registries, folders and
  names (what the operators import);
- :mod:`cam_core.app`: the data the App's panels draw;
- :mod:`cam_core.types`: the types and name tables a user may inspect.

Subpackages, each importing only those listed before it (``errors``,
``skips`` and ``labels`` are small shared modules): ``engine`` (one hooked
forward and one backward per batch, torch only), ``scoring`` (scores from
each map), ``media`` (decoding, geometry, map files), ``models`` (models by
name or object, registries), ``runs`` (the run record, its App look, views,
summaries), ``compute`` (argument checks, the plan, the batch loop).
"""
import importlib as _importlib
import warnings as _warnings

from .compute.api import compute_cams
from .compute.shards import queue_cams, resume_run
from .runs.shards import run_status
from .runs.record import list_cam_runs
from .compute.ondemand import explain
from .compute.saved import save_explanation
from .runs.rescore import score_regions
from .runs.views import sort_by_score
from .runs.objects import sort_objects_by_score
from .runs.summary import summarize_run
from .runs.appearance import show_run
from .media.mapfiles import load_map
from .runs.orphans import remove_orphaned_maps
from .models.describe import describe_model, default_layers
from .models.sources import load_model
from .models.register import register_model, register_factory
from .models.registry import unregister_factory
from .models.cam_model import CamModel
from .engine.methods import METHODS
from .errors import CamArgumentError

from . import app, checks, types  # noqa: E402 (the three modules, found as attributes)

__version__ = "0.1.0"

__all__ = [
    "compute_cams",
    "queue_cams",
    "run_status",
    "resume_run",
    "list_cam_runs",
    "explain",
    "save_explanation",
    "score_regions",
    "sort_by_score",
    "sort_objects_by_score",
    "summarize_run",
    "show_run",
    "load_map",
    "remove_orphaned_maps",
    "describe_model",
    "default_layers",
    "load_model",
    "register_model",
    "register_factory",
    "unregister_factory",
    "CamModel",
    "METHODS",
    "CamArgumentError",
]

# names the top level held before 0.2, by their new module: still found here,
# with a DeprecationWarning, until 0.3
REMOVED_IN = "0.3"
_MOVED = {name: module.__name__.rsplit(".", 1)[1] for module in (checks, app, types) for name in module.__all__}


def __getattr__(name):
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'cam_core' has no attribute {name!r}")
    _warnings.warn(
        f"cam_core.{name} moved to cam_core.{module}.{name}; the old name is removed in {REMOVED_IN}",
        DeprecationWarning, stacklevel=2)
    return getattr(_importlib.import_module(f"{__name__}.{module}"), name)


def __dir__():
    return sorted(__all__ + ["__version__", "checks", "app", "types"])
