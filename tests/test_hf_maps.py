"""Hugging Face transformers models: maps equal grad-cam's own for the same
hand-written target (a classifier's and a segmenter's logits, a DETR
query's class probability with the no-object class dropped), and
compute_cams on real images storing maps on the images for each kind."""
import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SemanticSegmentationTarget

import cam_core
import hf_models as hm
from cam_core.engine import CamEngine
from cam_core.engine.detection import predicted_objects
from cam_core.engine.detector import DetectorEngine
from cam_core.engine.targets import classifier_targets
from test_equivalence import photos, reference

K = 3  # queries explained per image


class Field(torch.nn.Module):
    """One field of the model's output (``logits``), for grad-cam's own classes."""

    def __init__(self, model, field="logits"):
        super().__init__()
        self.model, self.field = model, field

    def forward(self, x):
        return getattr(self.model(pixel_values=x), self.field)


@pytest.mark.parametrize("cls", ["ViTForImageClassification", "DeiTForImageClassificationWithTeacher",
                                 "Dinov2WithRegistersForImageClassification", "SwinForImageClassification",
                                 "ConvNextForImageClassification", "BeitForImageClassification",
                                 "ResNetForImageClassification"])
def test_classifier_maps_equal_gradcam(cls):
    model = hm.build(cls)
    d = cam_core.describe_model(model)
    assert d.kind == "classifier" and d.classes == [f"class{i}" for i in range(5)]
    size = d.input_size[0]  # the config's image_size: 56 for DINOv2 (patch 14), else 64
    x = photos(size)
    [layer] = d.resolve_layers(None)
    engine = CamEngine(d.model.module, [layer], ["gradcam"])
    res = engine.explain(x, lambda out: classifier_targets(out, None))
    engine.close()
    with torch.no_grad():
        predicted = model(pixel_values=x).logits.argmax(1).tolist()
    assert list(res.indices) == predicted
    expected = reference("gradcam", Field(model), layer.module, x, [ClassifierOutputTarget(i) for i in predicted],
                         layer.reshape_transform((size, size)))
    got = res.maps[("gradcam", layer.name)].numpy()
    assert got.shape == expected.shape == (2, size, size) and expected.max() > 0.5
    np.testing.assert_allclose(got, expected, atol=2e-5)


@pytest.mark.parametrize("cls", ["SegformerForSemanticSegmentation",
                                 "DPTForSemanticSegmentation"])
def test_segmenter_maps_equal_gradcam(cls):
    from cam_core.engine.targets import segmenter_targets

    model = hm.build(cls)
    d = cam_core.describe_model(model, transforms=hm.processor())
    assert d.kind == "segmenter" and d.classes == [f"class{i}" for i in range(5)]
    x = photos(hm.SIZE)
    [layer] = d.resolve_layers(None)
    engine = CamEngine(d.model.module, [layer], ["gradcam"])
    res = engine.explain(x, lambda out: segmenter_targets(out, [None, None], [None, None], None))
    engine.close()
    with torch.no_grad():
        logits = model(pixel_values=x).logits  # (B, classes, H/4, W/4): the model's own resolution
    assert logits.shape[-1] <= hm.SIZE
    pred = logits.argmax(1).numpy()
    targets = []
    for b in range(2):  # the dominant predicted class, its predicted region at the logits' resolution
        values, counts = np.unique(pred[b], return_counts=True)
        c = int(values[np.argmax(counts)])
        targets.append(SemanticSegmentationTarget(c, (pred[b] == c).astype(np.float32)))
    expected = reference("gradcam", Field(model), layer.module, x, targets, layer.reshape_transform((hm.SIZE,) * 2))
    got = res.maps[("gradcam", layer.name)].numpy()
    assert expected.max() > 0.5
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_detr_query_maps_equal_gradcam():
    model = hm.detr(seed=1)
    d = cam_core.describe_model(model, transforms=hm.processor())
    assert d.kind == "detector" and d.classes == ["cat", "dog", "person", "cup"]
    assert d.default_layers == ["model.model.input_projection"]  # the feature map the encoder reads
    x = photos(hm.SIZE)
    layers = d.resolve_layers(None)
    res = DetectorEngine(d.model.module, layers, ["gradcam"]).explain(
        x, lambda outs: [predicted_objects(o, 0.0, K) for o in outs])
    with torch.no_grad():
        out = model(pixel_values=x)
    probs = out.logits.softmax(-1)[..., :-1]  # the no-object class dropped, as post_process does
    scores, labels = probs.max(-1)
    order = scores.argsort(dim=1, descending=True)[:, :K]
    for b in range(2):
        objects = res.objects[b]
        assert [o.label for o in objects] == labels[b, order[b]].tolist()
        np.testing.assert_allclose([o.score for o in objects], scores[b, order[b]].numpy(), rtol=1e-5)
        cx, cy, w, h = out.pred_boxes[b, order[b, 0]].tolist()
        np.testing.assert_allclose(objects[0].box, [(cx - w / 2) * 64, (cy - h / 2) * 64, (cx + w / 2) * 64,
                                                    (cy + h / 2) * 64], atol=1e-4)
    [info] = layers
    for k in range(K):  # the k-th query of each image: its class probability
        targets = [lambda logits, q=int(order[b, k]), c=int(labels[b, order[b, k]]): logits[q].softmax(-1)[c]
                   for b in range(2)]
        expected = reference("gradcam", Field(model), info.module, x, targets)
        got = torch.stack([res.object_maps[("gradcam", info.name)][b][k] for b in range(2)]).numpy()
        assert expected.max() > 0.5
        np.testing.assert_allclose(got, expected, atol=2e-5)
