"""cam_core: class activation maps for FiftyOne datasets.

The engine of the plugin, usable from Python without the App::

    import cam_core
    cam_core.compute_cams(dataset, "timm:deit_tiny_patch16_224", methods=["gradcam", "eigencam"])

Subpackages, each importing only those listed before it (``errors``,
``skips`` and ``labels`` are small shared modules):

- ``engine``: one hooked forward and one backward per batch (torch only);
- ``scoring``: scores computed from each map (numpy; no FiftyOne);
- ``media``: image decoding, geometry, the DataLoader, map files;
- ``models``: models by name or object, registries, describing a model;
- ``runs``: the run record, its App look, views, rescoring, summaries;
- ``compute``: ``compute_cams``: argument checks, the plan, the batch loop.
"""
from .compute.api import check_compute_args, compute_cams, parameters as compute_parameters
from .compute.checks import check_samples
from .compute.plan import field_name
from .compute.shards import queue_cams, resume_run, run_shard
from .engine.layers import LayerInfo
from .engine.methods import ALIASES, METHODS
from .errors import CamArgumentError, CamArgumentTypeError
from .labels import label_fields, object_fields
from .media.mapfiles import OUTPUT_ROOT_ENV, check_output_dir, default_output_dir, load_map, output_root
from .models.allowlist import ENV as FACTORY_MODULES_ENV
from .models.allowlist import allowed as allowed_factory_modules
from .models.allowlist import allowing as allow_factory_modules
from .models.cam_model import CamModel
from .models.describe import ModelDescription, candidate_layers, default_layers, describe_model
from .models.register import check_factory_args, register_factory, register_model
from .models.registry import (
    build_factory,
    check_kwargs,
    check_name,
    check_shareable,
    process_only_names,
    registered_factories,
    registered_models,
    resolve_factory,
    unregister_factory,
)
from .models.sources import load_model, resolve_model
from .runs.appearance import show_run
from .runs.objects import check_objects_args, sort_objects_by_score
from .runs.orphans import OrphanedMaps, orphaned_maps, remove_orphaned_maps
from .runs.record import CamRunConfig, CamRunResults, list_cam_runs, run_config
from .runs.shards import run_status
from .runs.state import RunStatus
from .runs.rescore import check_score_args, score_regions
from .runs.summary import check_summary_args, default_summary_dir, summarize_run
from .runs.usage import saved_views_using, serialized_stages, uses_fields
from .runs.views import check_sort_args, map_scores, missing_scores, sort_by_score
from .scoring.names import DETECTION_SCORES, SCORES
from .skips import skipped_reasons
from .models.kwargs import parse_kwargs
from .compute.queued import check_splittable
from .runs.objects import why_no_patches
from .scoring.names import MASK_SCORES
from .compute.explanation import Explanation
from .compute.ondemand import explain
from .compute.saved import explanation_field, save_explanation
from .runs.histograms import latest_run, score_histogram, score_view
from .runs.stored import agreement_matrix, class_means, class_view, sample_maps, sample_objects

__version__ = "0.1.0"

__all__ = [
    "compute_cams",
    "check_compute_args",
    "compute_parameters",
    "check_samples",
    "CamArgumentError",
    "CamArgumentTypeError",
    "candidate_layers",
    "default_layers",
    "describe_model",
    "ModelDescription",
    "load_model",
    "resolve_model",
    "register_model",
    "registered_models",
    "process_only_names",
    "register_factory",
    "check_factory_args",
    "unregister_factory",
    "registered_factories",
    "build_factory",
    "check_name",
    "check_shareable",
    "resolve_factory",
    "check_kwargs",
    "FACTORY_MODULES_ENV",
    "allowed_factory_modules",
    "allow_factory_modules",
    "CamModel",
    "LayerInfo",
    "METHODS",
    "ALIASES",
    "field_name",
    "label_fields",
    "object_fields",
    "default_output_dir",
    "OUTPUT_ROOT_ENV",
    "output_root",
    "check_output_dir",
    "load_map",
    "CamRunConfig",
    "CamRunResults",
    "list_cam_runs",
    "run_status",
    "queue_cams",
    "resume_run",
    "run_shard",
    "RunStatus",
    "remove_orphaned_maps",
    "run_config",
    "skipped_reasons",
    "score_regions",
    "check_score_args",
    "sort_by_score",
    "missing_scores",
    "check_sort_args",
    "map_scores",
    "sort_objects_by_score",
    "check_objects_args",
    "summarize_run",
    "check_summary_args",
    "default_summary_dir",
    "show_run",
    "saved_views_using",
    "uses_fields",
    "serialized_stages",
    "SCORES",
    "DETECTION_SCORES",
    "parse_kwargs",
    "orphaned_maps",
    "OrphanedMaps",
    "check_splittable",
    "why_no_patches",
    "MASK_SCORES",
    "explain",
    "Explanation",
    "save_explanation",
    "explanation_field",
    "latest_run",
    "score_histogram",
    "score_view",
    "sample_maps",
    "sample_objects",
    "class_means",
    "class_view",
    "agreement_matrix",
]
