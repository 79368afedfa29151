"""Models registered in the database as importable factories: every process
that shares the database builds them by name (``cam_core.register_factory``).

A private mongod (conftest); the factory is ``models:deit_tiny`` (this tests
folder is importable), a real DeiT architecture with random weights.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import cam_core
from test_compute import add

TESTS = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def registered():
    d = cam_core.register_factory("tiny-deit", "models:deit_tiny", kwargs={"depth": 1, "num_classes": 3})
    yield d
    cam_core.unregister_factory("tiny-deit")


def test_a_registered_factory_is_a_model_name_everywhere(dataset, image_dir, registered):
    # checked when registered: built and probed once
    assert registered.default_layers == ["blocks.0.norm1"] and registered.num_outputs == 3
    assert cam_core.checks.registered_factories()["tiny-deit"] == {"factory": "models:deit_tiny",
                                                            "kwargs": {"depth": 1, "num_classes": 3}}

    add(dataset, image_dir, ["astronaut", "coffee"])
    res = cam_core.compute_cams(dataset, "tiny-deit", methods="gradcam", storage="inline")
    assert res.num_samples == 2
    config = dataset.get_run_info("cam").config
    assert config.model == "tiny-deit"
    assert config.model_kwargs == {"factory": "models:deit_tiny", "kwargs": {"depth": 1, "num_classes": 3}}
    here = dataset.values("cam_gradcam_blocks_0_norm1.map")

    # another process builds the same model from the database alone, and gets the same maps
    dataset.persistent = True
    code = (
        "import numpy as np, fiftyone as fo, cam_core\n"
        f"ds = fo.load_dataset({dataset.name!r})\n"
        "cam_core.compute_cams(ds, 'tiny-deit', methods='gradcam', storage='inline', run_key='again')\n"
        "print(np.concatenate([m.map.ravel() for m in ds.values('again_gradcam_blocks_0_norm1')]).tobytes().hex())\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    there = np.frombuffer(bytes.fromhex(out.stdout.strip().splitlines()[-1]), dtype=here[0].dtype)
    assert np.array_equal(there, np.concatenate([m.ravel() for m in here]))
    assert sum(m.max() > 0 for m in here) >= 1  # maps, not blanks


def test_registration_refuses_what_could_not_be_built_and_keeps_what_was_there(registered):
    before = cam_core.checks.registered_factories()
    with pytest.raises(ValueError, match="already registered; pass overwrite=True"):
        cam_core.register_factory("tiny-deit", "models:resnet18")
    with pytest.raises(ValueError, match="model name 'a:b' is not allowed"):
        cam_core.register_factory("a:b", "models:resnet18")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        cam_core.register_factory("x", "no_such_module:f")
    with pytest.raises(ValueError, match="module 'models' has no attribute 'nothing'"):
        cam_core.register_factory("x", "models:nothing")
    with pytest.raises(ValueError, match=r"factory 'models:resnet18' of model 'x' failed: TypeError"):
        cam_core.register_factory("x", "models:resnet18", kwargs={"depth": 3})
    with pytest.raises(ValueError, match="no model factory is registered as 'x'"):
        cam_core.checks.build_factory("x")
    assert cam_core.checks.registered_factories() == before

    # replaced on request; removed once
    cam_core.register_factory("tiny-deit", "models:resnet18", overwrite=True)
    assert cam_core.checks.build_factory("tiny-deit").module.__class__.__name__ == "ResNet"
    assert cam_core.unregister_factory("tiny-deit") is True
    assert cam_core.unregister_factory("tiny-deit") is False
    assert "tiny-deit" not in cam_core.checks.registered_factories()
