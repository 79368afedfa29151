"""How the compute form's run executes (operators/execution.py): the batch
size ("auto" by default in the form), the precision, and delegation steered
for detector runs larger than the App server should hold, with the reason."""
import asyncio

import pytest

import fiftyone as fo
import fiftyone.operators as foo

from test_detector_operators import compute, form, planted, scenes  # noqa: F401 (fixtures)
from test_operators import plugins_dir, tiny_resnet, uri  # noqa: F401 (fixtures)

# operators/execution.py's DETECTOR_IMMEDIATE: a detector run over more samples is steered to delegation
DETECTOR_IMMEDIATE = 16
BASE = {"model_source": "registered", "model": "planted", "run_key": "ok"}


def preselected(dataset, extra=None):
    from fiftyone.operators.executor import resolve_execution_options

    request = {"dataset_name": dataset.name, "params": dict(BASE, methods=["gradcam"], **(extra or {}))}
    options = asyncio.run(resolve_execution_options(foo.OperatorRegistry(), uri("compute_cams"), request))
    assert options.allow_immediate_execution and options.allow_delegated_execution
    return options.default_choice_to_delegated


def test_the_form_offers_auto_batches_by_default_and_the_precisions(scenes, planted):
    props = form(scenes, "compute_cams", BASE)
    assert props["batch_size"].default == "auto"
    choices = [c.value for c in props["batch_size"].view.choices]
    assert choices[0] == "auto" and "16" in choices
    assert props["precision"].default == "fp32" and props["precision"].view.values() == ["fp32", "bf16", "fp16"]
    assert not [n for n, p in props.items() if p.invalid]
    for value in ("8", " 16 ", "auto"):
        assert not form(scenes, "compute_cams", dict(BASE, batch_size=value))["batch_size"].invalid
    bad = form(scenes, "compute_cams", dict(BASE, batch_size="lots"))["batch_size"]
    assert bad.invalid and "must be an integer >= 1 or 'auto'" in bad.error_message


def test_a_run_from_the_operator_with_auto_batches_and_bf16(scenes, planted):
    res = compute(scenes, batch_size="auto", precision="bf16", max_objects=2, run_key="cam")
    assert res.num_samples == 6
    assert scenes.get_run_info("cam").config.precision == "bf16"


def test_a_detector_run_over_many_samples_is_steered_to_delegation_with_its_reason(scenes, planted):
    assert preselected(scenes) is False  # six samples: fine in the App server
    assert "delegation" not in form(scenes, "compute_cams", BASE)
    first = scenes.first().filepath
    scenes.add_samples([fo.Sample(filepath=first) for _ in range(DETECTOR_IMMEDIATE)])  # 22 samples
    assert preselected(scenes) is True
    notice = form(scenes, "compute_cams", dict(BASE, max_objects=7))["delegation"].view
    assert notice.label == "Delegated execution recommended"
    assert "a detector run over 22 samples" in notice.description and "up to 7 objects per image" in notice.description


def test_a_classifier_run_of_the_same_size_stays_in_the_app(scenes, planted):
    import cam_core

    tiny = tiny_resnet()
    cam_core.register_model("tiny-here", tiny.module, transforms=tiny.transforms, classes=tiny.classes)
    first = scenes.first().filepath
    scenes.add_samples([fo.Sample(filepath=first) for _ in range(DETECTOR_IMMEDIATE)])
    assert preselected(scenes, {"model": "tiny-here"}) is False
    props = form(scenes, "compute_cams", dict(BASE, model="tiny-here"))
    assert "delegation" not in props and not [n for n, p in props.items() if p.invalid]
