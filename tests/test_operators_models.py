"""The models the operators run: one registered in this process only (refused
for delegation), a library model with random weights (the same at every
load), and registrations refused when workers could not build them.

The setup of test_operators (tests/plugin.py): a private mongod, the plugins
folder, four photos.
"""
import sys

import pytest

import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionError

import cam_core
from plugin import photos, plugins_dir, uri  # noqa: F401 (fixtures)
from test_operators import tiny_resnet


def test_a_model_registered_in_this_process_only_is_refused_for_delegation(photos, plugins_dir):
    tiny = tiny_resnet()
    cam_core.register_model("here-only", tiny.module, transforms=tiny.transforms, classes=tiny.classes)
    op = foo.get_operator(uri("compute_cams"))
    with pytest.raises(ExecutionError, match="in this process only: delegated workers cannot build it"):
        op(photos, "here-only", methods=["eigencam"], run_key="d", delegate=True)
    assert "d" not in photos.list_runs()
    assert op(photos, "here-only", methods=["eigencam"], run_key="h").num_samples == 4  # run here, it works


def test_library_model_with_random_weights(photos, plugins_dir):
    op = foo.get_operator(uri("compute_cams"))
    res = op(photos.limit(1), "torchvision:resnet18", pretrained=False, methods=["eigencam"], run_key="tv")
    assert res.num_samples == 1
    config = photos.get_run_info("tv").config
    assert config.model == "torchvision:resnet18" and config.model_kwargs == {"weights": None}
    assert config.layers == ["layer4"]


def test_random_weights_are_the_same_at_every_load(plugins_dir):
    """A library model with random weights is the same model in every App
    server start and worker: its maps can be compared and reproduced."""
    import torch

    # the plugin's own models module, as the App server loads it
    operator = foo.OperatorRegistry().get_operator(uri("compute_cams"))
    models = sys.modules[type(operator).__module__].models
    weights = []
    for seed in (1, 2):  # whatever the process's random state was
        models._cache.clear()  # a fresh process
        torch.manual_seed(seed)
        state = torch.random.get_rng_state()
        facts = models.describe("torchvision", "resnet18", pretrained=False)
        weights.append(facts.model.module.conv1.weight.detach().clone())
        assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is left alone
    models._cache.clear()
    assert torch.equal(weights[0], weights[1])


def test_registration_refuses_what_workers_could_not_build(plugins_dir):
    op = foo.get_operator(uri("register_cam_model"))
    with pytest.raises(ExecutionError, match="cannot import module 'no_such_module'"):
        op("broken", "no_such_module:build")
    with pytest.raises(ExecutionError, match="has no attribute 'nothing'"):
        op("broken", "test_operators:nothing")
    with pytest.raises(ExecutionError, match="':' marks library models"):
        op("torchvision:resnet18", "test_operators:tiny_resnet")
    from fiftyone.operators.store import ExecutionStore

    assert not ExecutionStore.create("fiftyone_cam_models").has("broken")
    with pytest.raises(ExecutionError, match="Path: kwargs"):
        foo.execute_operator(uri("register_cam_model"),
                             params={"name": "broken", "factory": "test_operators:tiny_resnet", "kwargs": "[1, 2]"})
    out = op("tiny-again", "test_operators:tiny_resnet")
    assert out["suggested"] == ["layer4"] and not out["segmenter"]
    with pytest.raises(ExecutionError, match="already registered"):
        op("tiny-again", "test_operators:tiny_resnet")
    assert foo.get_operator(uri("unregister_cam_model"))("tiny-again")["removed"] is True
