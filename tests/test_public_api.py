"""cam_core's public API: a small top level of what a user calls, three
modules for the rest, and every name that moved still found at the top level
with a DeprecationWarning naming its new home (until the release it names)."""
import os
import re
import subprocess
import warnings

import pytest

import cam_core

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOP = [
    "compute_cams", "queue_cams", "run_status", "resume_run", "list_cam_runs", "explain", "save_explanation",
    "score_regions", "sort_by_score", "sort_objects_by_score", "summarize_run", "show_run", "load_map",
    "remove_orphaned_maps", "describe_model", "default_layers", "load_model", "register_model", "register_factory",
    "unregister_factory", "CamModel", "METHODS", "CamArgumentError",
]
# the names the top level held in 0.1.0 beside those it keeps: each must still be found there
MOVED = [
    "check_compute_args", "compute_parameters", "check_samples", "candidate_layers", "resolve_model",
    "registered_models", "process_only_names", "check_factory_args", "registered_factories", "build_factory",
    "check_name", "check_shareable", "resolve_factory", "check_kwargs", "FACTORY_MODULES_ENV",
    "allowed_factory_modules", "allow_factory_modules", "field_name", "label_fields", "object_fields",
    "default_output_dir", "OUTPUT_ROOT_ENV", "output_root", "check_output_dir", "run_shard", "run_config",
    "skipped_reasons", "check_score_args", "missing_scores", "check_sort_args", "map_scores", "check_objects_args",
    "check_summary_args", "default_summary_dir", "saved_views_using", "uses_fields", "serialized_stages",
    "parse_kwargs", "orphaned_maps", "check_splittable", "why_no_patches", "explanation_field", "latest_run",
    "score_histogram", "score_view", "sample_maps", "sample_objects", "class_means", "class_view",
    "agreement_matrix", "CamArgumentTypeError", "ModelDescription", "LayerInfo", "CamRunConfig", "CamRunResults",
    "RunStatus", "OrphanedMaps", "Explanation", "ALIASES", "SCORES", "DETECTION_SCORES", "MASK_SCORES",
]
MODULES = {"checks": cam_core.checks, "app": cam_core.app, "types": cam_core.types}


def test_the_top_level_holds_what_a_user_calls():
    assert cam_core.__all__ == TOP
    assert set(dir(cam_core)) == set(TOP) | {"__version__", "checks", "app", "types"}
    for name in TOP:
        obj = getattr(cam_core, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), f"cam_core.{name} has no docstring"
    for module in MODULES.values():
        assert module.__doc__.strip() and module.__all__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
            assert name not in TOP


def test_every_moved_name_still_works_with_a_warning_naming_its_new_home():
    moved = cam_core._MOVED
    assert sorted(moved) == sorted(MOVED)  # every name of 0.1.0 that left the top level, none lost
    assert sorted(MOVED) == sorted(n for m in MODULES.values() for n in m.__all__)
    for name, module in moved.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obj = getattr(cam_core, name)
        assert obj is getattr(MODULES[module], name)
        [w] = caught
        assert w.category is DeprecationWarning and w.filename == __file__  # points at the caller
        assert f"cam_core.{module}.{name}" in str(w.message) and cam_core.REMOVED_IN in str(w.message)
    with pytest.raises(AttributeError, match="no attribute 'compute_cam'"):
        cam_core.compute_cam  # noqa: B018 (a typo is still an AttributeError)


def test_the_repository_uses_no_moved_name_at_the_top_level():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile(r"cam_core\.(" + "|".join(sorted(cam_core._MOVED, key=len, reverse=True)) + r")\b")
    allowed = {"cam_core/__init__.py", "CHANGELOG.md", "tests/test_public_api.py"}
    found = []
    for path in files:
        if path in allowed or not path.endswith((".py", ".md", ".ipynb", ".yml")):
            continue
        with open(os.path.join(REPO, path), encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                found += [f"{path}:{i}: {m.group(0)}" for m in pattern.finditer(line)]
    assert not found, "\n".join(found[:40])
