"""The compute form's Hugging Face transformers source: the user types a hub
repository id or a folder written by save_pretrained (the cached repositories
of image models are offered), with the same probe, layers and targets as any
model; a name that cannot be loaded here is refused in the form with what to
give; a run through the operator stores maps; transformers is imported only
when the source is used.

Nothing is downloaded (HF_HUB_OFFLINE, HF_HOME under the tests' temp folder:
tests/conftest.py): the models are small random ones saved with
save_pretrained, one of them written into the hub cache as a download leaves it.
"""
import importlib
import json
import os
import shutil
import subprocess
import sys

import pytest
from fiftyone.operators.executor import ExecutionError

import fiftyone.operators as foo
import hf_models as hm
from plugin import photos, plugins_dir, uri  # noqa: F401 (fixtures)
from test_detector_operators import form

CACHED = "cam-tests/tiny-vit"  # an image classifier in the hub cache
CACHED_BASE = "cam-tests/tiny-vit-base"  # a base model (no head to explain) in the hub cache


def _write(model, folder):
    model.save_pretrained(folder)
    hm.processor().save_pretrained(folder)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A ViT classifier and a SegFormer segmenter saved with save_pretrained, and the ViT and a
    base ViTModel written into the hub cache (refs/main naming the snapshot, as a download leaves them)."""
    from huggingface_hub.constants import HF_HUB_CACHE
    from transformers import ViTConfig, ViTModel

    root = tmp_path_factory.mktemp("hf")
    out = {"vit": str(root / "vit"), "seg": str(root / "seg")}
    _write(hm.build("ViTForImageClassification"), out["vit"])
    _write(hm.build("SegformerForSemanticSegmentation"), out["seg"])
    base = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                              image_size=64))
    cached = []
    for repo, write in [(CACHED, lambda f: _write(hm.build("ViTForImageClassification"), f)),
                        (CACHED_BASE, lambda f: _write(base, f))]:
        folder = os.path.join(HF_HUB_CACHE, "models--" + repo.replace("/", "--"))
        revision = "0" * 40
        write(os.path.join(folder, "snapshots", revision))
        os.makedirs(os.path.join(folder, "refs"), exist_ok=True)
        with open(os.path.join(folder, "refs", "main"), "w") as f:
            f.write(revision)
        cached.append(folder)
    yield out
    for folder in cached:
        shutil.rmtree(folder)


def test_the_form_offers_and_probes_hugging_face_models(photos, plugins_dir, folders):
    base = {"model_source": "hf", "run_key": "h"}
    props = form(photos, "compute_cams", base)
    assert "hf" in [c.value for c in props["model_source"].view.choices]
    # the cached image model is offered, the cached base model is not; any other name may be typed
    assert [c.value for c in props["model"].view.choices] == [CACHED]
    view = props["model"].view.to_json()
    assert view["allow_user_input"] and "save_pretrained" in view["description"]

    props = form(photos, "compute_cams", dict(base, model=folders["vit"]))
    assert not props["model"].invalid
    assert props["model_facts"].view.label.startswith("classifier, 5 named classes")
    assert props["layers"].default == ["vit.layers.1.layernorm_before"]  # the last block's tokens
    layers = [c.value for c in props["layers"].view.choices]
    assert {"vit.layers.0.layernorm_before", "vit.layers.1.layernorm_before"} <= set(layers)
    assert "pretrained" not in props  # its weights are those saved
    assert props["summary"].view.label.startswith("4 sample(s) x 1 map(s)")

    props = form(photos, "compute_cams", dict(base, model=folders["seg"]))
    assert props["model_facts"].view.label.startswith("segmentation model, 5 named classes")

    props = form(photos, "compute_cams", dict(base, model=CACHED))  # a hub id read from the cache, offline
    assert not props["model"].invalid and props["model_facts"].view.label.startswith("classifier")


@pytest.mark.parametrize("name, words", [
    # not in the cache, and the hub cannot be reached
    ("nobody/no-such-model", "cannot load the Hugging Face model 'hf:nobody/no-such-model'"),
    ("/no/such/folder", "'hf:/no/such/folder' names no folder on this machine"),
    ("not a name!", "cannot load the Hugging Face model 'hf:not a name!'"),
    # found, but a base model: no class scores to explain
    (CACHED_BASE, "ViTModel"),
])
def test_a_name_that_cannot_be_loaded_is_refused_with_what_to_give(photos, plugins_dir, folders, name, words):
    props = form(photos, "compute_cams", {"model_source": "hf", "run_key": "h", "model": name})
    message = props["model"].error_message
    assert props["model"].invalid and words in message, message
    assert "save_pretrained" in message or "ForImageClassification" in message, message  # what may be given
    assert "model_facts" not in props and "layers" not in props


def test_a_hugging_face_run_from_the_operator(photos, plugins_dir, folders):
    op = foo.get_operator(uri("compute_cams"))
    res = op(photos.limit(2), f"hf:{folders['seg']}", methods=["gradcam"], run_key="hs")
    assert res.num_samples == 2 and len(res.fields) == 1
    config = photos.get_run_info("hs").config
    assert config.model == f"hf:{folders['seg']}" and config.layers == ["segformer.stages.3.layer_norm"]
    maps = photos.limit(2).values(res.fields[0])
    assert all(m is not None and os.path.isfile(m.map_path) for m in maps)
    # the panels load the run's model again from the name it recorded
    operator = foo.OperatorRegistry().get_operator(uri("compute_cams"))
    panel_common = importlib.import_module(type(operator).__module__.rsplit(".", 1)[0] + ".panel_common")
    facts = panel_common.run_model(config)
    assert facts.kind == "segmenter" and facts.model.name == f"hf:{folders['seg']}"
    with pytest.raises(ExecutionError, match="cannot load the Hugging Face model 'hf:nobody/no-such-model'"):
        op(photos, "hf:nobody/no-such-model", methods=["gradcam"], run_key="bad")
    assert "bad" not in photos.list_runs()


def test_transformers_is_imported_only_when_the_source_is_used(folders):
    # a fresh process: the operators' models module lists every other source's names and the cached
    # Hugging Face ones without importing transformers; loading a Hugging Face name imports it
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import json, sys; sys.path.insert(0, %r); from operators import models; "
            "models.model_choices('torchvision'); models.model_choices('hf'); before = 'transformers' in sys.modules; "
            "models.describe('hf', %r); print(json.dumps([before, 'transformers' in sys.modules]))"
            % (root, folders["vit"]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, True]
