"""What the plugin's forms and workers use: argument checks, registries,
folders and names, one shard of a queued run. Not the user's everyday API
(that is ``cam_core``'s top level), but stable: the operators import these
by name, and a tool that builds its own form on ``cam_core`` may too.

Each ``check_*`` takes what its public function takes and raises the same
:class:`cam_core.CamArgumentError` (naming the parameter) without computing
or storing anything.
"""
from .compute.api import check_compute_args, parameters as compute_parameters
from .compute.checks import check_samples
from .models.describe import candidate_layers
from .models.sources import resolve_model
from .models.registry import (
    registered_models,
    process_only_names,
    registered_factories,
    build_factory,
    check_name,
    check_shareable,
    resolve_factory,
    check_kwargs,
)
from .models.register import check_factory_args
from .models.allowlist import (
    ENV as FACTORY_MODULES_ENV,
    allowed as allowed_factory_modules,
    allowing as allow_factory_modules,
)
from .compute.plan import field_name
from .labels import label_fields, object_fields
from .media.mapfiles import default_output_dir, OUTPUT_ROOT_ENV, output_root, check_output_dir
from .compute.shards import run_shard
from .runs.record import run_config
from .skips import skipped_reasons
from .runs.rescore import check_score_args
from .runs.views import missing_scores, check_sort_args, map_scores
from .runs.objects import check_objects_args, why_no_patches
from .runs.summary import check_summary_args, default_summary_dir
from .runs.usage import saved_views_using, uses_fields, serialized_stages
from .models.kwargs import parse_kwargs
from .runs.orphans import orphaned_maps
from .compute.queued import check_splittable
from .compute.saved import explanation_field

__all__ = [
    "check_compute_args",
    "compute_parameters",
    "check_samples",
    "candidate_layers",
    "resolve_model",
    "registered_models",
    "process_only_names",
    "check_factory_args",
    "registered_factories",
    "build_factory",
    "check_name",
    "check_shareable",
    "resolve_factory",
    "check_kwargs",
    "FACTORY_MODULES_ENV",
    "allowed_factory_modules",
    "allow_factory_modules",
    "field_name",
    "label_fields",
    "object_fields",
    "default_output_dir",
    "OUTPUT_ROOT_ENV",
    "output_root",
    "check_output_dir",
    "run_shard",
    "run_config",
    "skipped_reasons",
    "check_score_args",
    "missing_scores",
    "check_sort_args",
    "map_scores",
    "check_objects_args",
    "check_summary_args",
    "default_summary_dir",
    "saved_views_using",
    "uses_fields",
    "serialized_stages",
    "parse_kwargs",
    "orphaned_maps",
    "check_splittable",
    "why_no_patches",
    "explanation_field",
]
