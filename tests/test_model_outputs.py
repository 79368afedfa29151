"""Models as users bring them: a zoo segmenter's class order, outputs that
are not a bare tensor (Hugging Face ``ModelOutput``, dataclasses, tuples),
and ``torch.compile``d modules."""
import logging
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import transforms as T

import cam_core
import models
from cam_core.engine.outputs import model_output


def small():
    return T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()])


def add(dataset, image_dir, names):
    import fiftyone as fo

    dataset.add_samples([fo.Sample(filepath=image_dir[n]) for n in names])
    return dataset


def classes(n=1000):
    return [f"class{i}" for i in range(n)]


def zoo_segmenter(**config):
    """A segmenter built as FiftyOne's zoo builds deeplabv3 (manifest-torch.json:
    a ``TorchImageModelConfig`` with ``mask_targets_path`` pointing at VOC's labels),
    offline: random weights, from ``models.voc_deeplab``."""
    import fiftyone.utils.torch as fout

    base = dict(
        entrypoint_fcn="models.voc_deeplab",
        output_processor_cls="fiftyone.utils.torch.SemanticSegmenterOutputProcessor",
        output_processor_args={"has_softmax_out": False},
        mask_targets_path="{{eta-resources}}/voc-labels.txt",
        transforms=small(), ragged_batches=False,
    )
    base.update(config)
    return fout.TorchImageModel(fout.TorchImageModelConfig(base))


# -- item 5: a zoo segmenter's classes are in output order ---------------------

def test_zoo_segmenter_classes_follow_the_outputs(dataset, image_dir):
    model = zoo_segmenter()
    assert model.mask_targets[0] == "background" and model.mask_targets[1] == "aeroplane"
    assert model.classes[:2] == ["aeroplane", "background"]  # FiftyOne sorts the names

    d = cam_core.describe_model(model)
    assert d.segmenter and d.num_outputs == 21
    assert d.classes == models.VOC

    add(dataset, image_dir, ["astronaut", "chelsea"])
    cam_core.compute_cams(dataset, model, methods="gradcam", target="background", run_key="bg", storage="inline")
    assert dataset.values("bg_gradcam_backbone_16.target_index") == [0, 0]
    assert dataset.values("bg_gradcam_backbone_16.target_label") == ["background"] * 2

    # the model predicts background on 3/4 of each image, output 5 on the rest:
    # "prediction" skips the background class
    cam_core.compute_cams(dataset, model, methods="gradcam", run_key="pred", storage="inline")
    assert dataset.values("pred_gradcam_backbone_16.target_index") == [5, 5]
    assert dataset.values("pred_gradcam_backbone_16.target_label") == ["bottle"] * 2
    assert dataset.get_run_info("pred").config.classes == models.VOC


def test_zoo_segmenter_without_a_background_output():
    # no_background_cls: output i is mask value i + 1; keys as a JSON manifest gives them
    targets = {str(i + 1): f"c{i}" for i in range(21)}
    model = zoo_segmenter(mask_targets=targets, mask_targets_path=None,
                          output_processor_args={"has_softmax_out": False, "no_background_cls": True})
    assert cam_core.describe_model(model).classes == [f"c{i}" for i in range(21)]
    names = [f"n{i}" for i in range(21)]  # classes= still overrides them
    assert cam_core.describe_model(model, classes=names).classes == names


# -- item 6a: outputs that are not a bare tensor -------------------------------

class HFLike(OrderedDict):
    """What a Hugging Face ``ModelOutput`` is: an OrderedDict with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class DataclassOutput:
    logits: torch.Tensor
    hidden: torch.Tensor = None


class Returns(nn.Module):
    """A ResNet-18 whose logits come back wrapped as ``kind`` says."""

    def __init__(self, kind):
        super().__init__()
        self.model = models.resnet18()
        self.kind = kind

    def forward(self, x):
        logits = self.model(x)
        pooled = logits.mean(dim=1, keepdim=True)
        if self.kind == "hf":
            return HFLike(logits=logits, pooler_output=pooled)
        if self.kind == "dataclass":
            return DataclassOutput(logits, pooled)
        if self.kind == "tuple":
            return (logits, pooled)
        return {"features": pooled, "logits": logits}


def test_model_output_accepts_the_usual_shapes():
    t, other = torch.zeros(1, 3), torch.ones(1, 1)
    assert model_output(t) is t
    assert model_output({"out": t, "aux": other}) is t  # torchvision segmenters
    assert model_output({"logits": t, "hidden_states": other}) is t
    assert model_output({"only": t}) is t
    assert model_output(HFLike(logits=t, pooler_output=other)) is t
    assert model_output(DataclassOutput(t, other)) is t
    assert model_output((t, other)) is t and model_output([t]) is t


@pytest.mark.parametrize("out, said", [
    ("text", "str"),
    ({"a": torch.zeros(1), "b": torch.zeros(1)}, "keys"),
    (DataclassOutput(None), "DataclassOutput"),
    ((), "empty"),
])
def test_other_outputs_are_refused_saying_what_they_were(out, said):
    with pytest.raises(cam_core.CamArgumentError, match=said) as e:
        model_output(out)
    assert e.value.param == "model" and "logits" in str(e.value)


def test_a_model_returning_nonsense_is_refused_before_the_run(dataset, image_dir):
    class Nonsense(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return {"a": self.conv(x), "b": self.conv(x)}

    add(dataset, image_dir, ["astronaut"])
    with pytest.raises(cam_core.CamArgumentError, match="keys") as e:
        cam_core.compute_cams(dataset, Nonsense(), transforms=small(), layers=["conv"])
    assert "cannot take" not in str(e.value)  # the input was fine: the output is what is refused
    assert dataset.list_runs() == []


@pytest.mark.parametrize("kind", ["hf", "dataclass", "dict"])
def test_wrapped_outputs_give_the_plain_models_maps(dataset, image_dir, kind):
    add(dataset, image_dir, ["astronaut", "chelsea"])
    kw = dict(methods="gradcam", transforms=small(), classes=classes(), storage="inline")
    cam_core.compute_cams(dataset, models.resnet18(), layers=["layer4"], run_key="plain", **kw)
    res = cam_core.compute_cams(dataset, Returns(kind), layers=["model.layer4"], run_key="wrapped", **kw)
    assert res.num_samples == 2
    assert dataset.values("wrapped_gradcam_model_layer4.target_index") == dataset.values("plain_gradcam_layer4.target_index")
    for a, b in zip(dataset.values("plain_gradcam_layer4.map"), dataset.values("wrapped_gradcam_model_layer4.map")):
        np.testing.assert_array_equal(a, b)


# -- item 6b: torch.compile'd modules ------------------------------------------

def test_compiled_module_runs_on_its_original(dataset, image_dir, caplog):
    compiled = torch.compile(models.resnet18())
    assert hasattr(compiled, "_orig_mod")
    with caplog.at_level(logging.WARNING, logger="cam_core"):
        d = cam_core.describe_model(compiled, transforms=small())
    assert "torch.compile" in caplog.text and "uncompiled" in caplog.text
    assert "layer4" in d.layer_names and d.default_layers == ["layer4"]
    assert not any(n.startswith("_orig_mod") for n in d.layer_names)
    assert d.model.module is compiled._orig_mod

    add(dataset, image_dir, ["astronaut", "chelsea"])
    kw = dict(methods="gradcam", layers=["layer4"], transforms=small(), classes=classes(), storage="inline")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cam_core"):
        res = cam_core.compute_cams(dataset, compiled, run_key="compiled", **kw)
    assert res.num_samples == 2
    assert caplog.text.count("torch.compile") == 1, caplog.text  # said once per run
    assert dataset.get_run_info("compiled").config.model == "ResNet"
    cam_core.compute_cams(dataset, models.resnet18(), run_key="plain", **kw)
    for a, b in zip(dataset.values("plain_gradcam_layer4.map"), dataset.values("compiled_gradcam_layer4.map")):
        np.testing.assert_array_equal(a, b)


def test_compiled_module_inside_a_cam_model_or_a_torch_image_model():
    import fiftyone.utils.torch as fout

    cm = cam_core.CamModel(torch.compile(models.resnet18()), small(), classes())
    assert "layer4" in cam_core.describe_model(cm).layer_names
    assert hasattr(cm.module, "_orig_mod")  # the caller's CamModel is not changed

    zoo = fout.TorchImageModel(fout.TorchImageModelConfig(dict(
        entrypoint_fcn="models.resnet18", transforms=small(), classes=classes(), ragged_batches=False,
        output_processor_cls="fiftyone.utils.torch.ClassifierOutputProcessor")))
    zoo._model = torch.compile(zoo._model)
    assert cam_core.default_layers(zoo) == ["layer4"]


def test_a_compiled_submodule_is_refused_up_front(dataset, image_dir):
    model = models.resnet18()
    model.layer4 = torch.compile(model.layer4)
    add(dataset, image_dir, ["astronaut"])
    with pytest.raises(cam_core.CamArgumentError, match=r"'layer4' is a torch.compile") as e:
        cam_core.compute_cams(dataset, model, transforms=small(), layers=["layer3"])
    assert e.value.param == "model"
    assert dataset.list_runs() == []
