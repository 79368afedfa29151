"""The compute_cams form as the App receives it: bad input refused before
execution, only matching label fields and existing runs offered, the layer
picker (suggested layer, then stages, typed names checked), and delegation
preselected for costly methods.

The setup of test_operators (tests/plugin.py): a private mongod, ``tiny-resnet``
registered through the operator, four photos.
"""
import asyncio

import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionError

import cam_core
from plugin import compute, photos, plugins_dir, registered, uri  # noqa: F401 (fixtures)
from test_operators import tiny_resnet


def _form(dataset, params):
    """The compute_cams form as the App receives it for these parameters."""
    from fiftyone.operators.executor import resolve_type

    request = {"dataset_name": dataset.name, "params": params, "target": "inputs"}
    prop = asyncio.run(resolve_type(foo.OperatorRegistry(), uri("compute_cams"), request))
    return prop.type.properties


@pytest.mark.parametrize(
    "bad, field, message",
    [
        ({"run_key": "bad key!"}, "run_key", "run_key must be a valid Python identifier (letters, digits, underscores); got 'bad key!'"),
        ({"layers": []}, "layers", "choose at least one layer (suggested: layer4)"),
        ({"layers": ["layer9"]}, "layers", "unknown layer 'layer9': the model has no module at that path. Closest layers: layer"),
        ({"methods": []}, "methods", "choose at least one method"),
        ({"target": "label_field", "label_field": "objects"}, "label_field",
         "target field 'objects' holds Detections; a classification model needs an Classification field: ground_truth"),
        ({"target": "class", "target_class": "dog"}, "target_class", "class 'dog' is not one of the model's 4 classes"),
    ],
)
def test_the_form_refuses_bad_input_before_execution(photos, registered, bad, field, message):
    params = {"model_source": "registered", "model": "tiny-resnet", "methods": ["gradcam"], "run_key": "ok"}
    params.update(bad)
    props = _form(photos, params)
    invalid = {n: p.error_message for n, p in props.items() if p.invalid}
    assert list(invalid) == [field]
    assert invalid[field].startswith(message)
    with pytest.raises(ExecutionError, match=f"Path: {field}"):
        foo.execute_operator(uri("compute_cams"), ctx={"dataset": photos, "params": params})
    assert photos.list_runs() == []
    assert not [f for f in photos.get_field_schema() if f.startswith("ok_")]


def test_the_form_offers_only_matching_fields_and_existing_runs(photos, registered):
    props = _form(photos, {"model_source": "registered", "model": "tiny-resnet", "target": "label_field"})
    assert [c.value for c in props["label_field"].view.choices] == ["ground_truth"]
    layers = props["layers"]
    assert layers.default == ["layer4"]
    assert "layer3" in [c.value for c in layers.view.choices] and "fc" not in [c.value for c in layers.view.choices]
    labels = {c.value: c.label for c in props["methods"].view.choices}
    assert "costly" in labels["scorecam"] and "costly" in labels["ablationcam"] and "costly" not in labels["gradcam"]
    assert props["device"].view.values() == ["auto", "cpu"] + (["cuda"] if __import__("torch").cuda.is_available() else [])

    compute(photos, methods=["gradcam"], run_key="cam")
    props = _form(photos, {"model_source": "registered", "model": "tiny-resnet", "run_key": "cam"})
    assert props["run_key"].invalid and "already exists" in props["run_key"].error_message
    assert props["existing_run"].view.values() == ["overwrite", "continue"]
    props = _form(photos, {"model_source": "registered", "model": "tiny-resnet", "run_key": "cam",
                           "existing_run": "overwrite"})
    assert not [n for n, p in props.items() if p.invalid]
    # a new form proposes a free key
    assert _form(photos, {"model_source": "registered", "model": "tiny-resnet"})["run_key"].default == "cam_2"


def test_the_layer_picker_offers_suggested_then_stage_layers_and_keeps_typed_names(photos, registered):
    props = _form(photos, {"model_source": "registered", "model": "tiny-resnet"})
    view = props["layers"].view
    offered = [c.value for c in view.choices]
    forward = [info.name for info in cam_core.checks.candidate_layers(tiny_resnet())]
    # 40: the batch norms whose output an in-place ReLU or addition changes are not layers
    assert sorted(offered) == sorted(forward) and len(offered) == 40
    # the suggested layer, then the model's stages (forward order), then what is inside them
    assert offered[:7] == ["layer4", "conv1", "relu", "maxpool", "layer1", "layer2", "layer3"]
    assert offered.index("layer3.0") < offered.index("layer3.0.conv1")
    # the App filters the labels as the user types, in this order: the stage first
    typed = [c.value for c in view.choices if "layer3" in c.label]
    assert typed[0] == "layer3" and len(typed) == 10
    assert view.choices[0].label == "layer4 [512x2x2] (suggested)"
    # a typed name reaches the form (the App drops it unless user input is allowed) ...
    assert view.to_json()["allow_user_input"] is True
    # ... where an unknown one is refused, naming the closest layers
    params = {"model_source": "registered", "model": "tiny-resnet", "methods": ["gradcam"], "run_key": "ok",
              "layers": ["layer4", "layer33"]}
    layers = _form(photos, params)["layers"]
    assert layers.invalid
    assert layers.error_message.startswith("unknown layer 'layer33': the model has no module at that path. "
                                           "Closest layers: layer3")


def test_delegation_is_preselected_for_costly_methods(photos, registered):
    from fiftyone.operators.executor import resolve_execution_options

    def preselected(methods):
        request = {"dataset_name": photos.name,
                   "params": {"model_source": "registered", "model": "tiny-resnet", "methods": methods}}
        options = asyncio.run(resolve_execution_options(foo.OperatorRegistry(), uri("compute_cams"), request))
        assert options.allow_immediate_execution and options.allow_delegated_execution
        return options.default_choice_to_delegated

    assert preselected(["gradcam"]) is False  # four samples, one cheap method
    assert preselected(["gradcam", "scorecam"]) is True
    photos.add_samples([fo.Sample(filepath=photos.first().filepath) for _ in range(97)])  # 101 samples
    assert preselected(["gradcam"]) is True
