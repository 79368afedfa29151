"""cam_core: class activation maps for FiftyOne datasets.

The engine of the plugin, usable from Python without the App::

    import cam_core
    cam_core.compute_cams(dataset, "timm:deit_tiny_patch16_224", methods=["gradcam", "eigencam"])
"""
from .appearance import show_run
from .compute import compute_cams
from .factories import build_factory, register_factory, registered_factories, unregister_factory
from .layers import LayerInfo
from .methods import ALIASES, METHODS, field_name
from .models import CamModel, load_model, register_model, registered_models, resolve_model
from .probing import ModelDescription, candidate_layers, default_layers, describe_model
from .runs import list_cam_runs, skipped_reasons
from .evaluate import score_regions
from .summary import summarize_run
from .views import SCORES, sort_by_score

__version__ = "0.1.0"

__all__ = [
    "compute_cams",
    "candidate_layers",
    "default_layers",
    "describe_model",
    "ModelDescription",
    "load_model",
    "register_model",
    "registered_models",
    "register_factory",
    "unregister_factory",
    "registered_factories",
    "build_factory",
    "resolve_model",
    "CamModel",
    "LayerInfo",
    "METHODS",
    "ALIASES",
    "field_name",
    "list_cam_runs",
    "skipped_reasons",
    "score_regions",
    "sort_by_score",
    "summarize_run",
    "show_run",
    "SCORES",
]
