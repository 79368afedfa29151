"""Hugging Face transformers models: maps equal grad-cam's own for the same
hand-written target (a classifier's and a segmenter's logits (SegFormer,
DPT, UperNet over ConvNeXt), a detector query's class probability: DETR's
and YOLOS' softmax with the no-object class dropped, RT-DETR's sigmoid)."""
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
                                 "DPTForSemanticSegmentation", "UperNetForSemanticSegmentation"])
def test_segmenter_maps_equal_gradcam(cls):
    from cam_core.engine.targets import segmenter_targets

    model = hm.upernet() if cls.startswith("UperNet") else hm.build(cls)
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


def _yolos_tokens(x):
    # YOLOS' tokens: its class token, the 4x4 patches row by row, then its detection tokens
    return x[:, 1:17].reshape(len(x), 4, 4, -1).permute(0, 3, 1, 2)


# (the model, its suggested layer, the class probabilities of its logits as its post-processing reads them,
# grad-cam's reshape of that layer's output, written here from the architecture)
DETECTORS = {
    "DETR": (lambda: hm.detr(seed=1), "model.model.input_projection",  # the feature map the encoder reads
             lambda logits: logits.softmax(-1)[..., :-1], None),  # the no-object class dropped
    "YOLOS": (lambda: hm.yolos(seed=1), "model.vit.encoder.layer.1.layernorm_before",  # the last block's patches
              lambda logits: logits.softmax(-1)[..., :-1], _yolos_tokens),
    "RT-DETR": (lambda: hm.rtdetr(seed=1), "model.model.encoder_input_proj.2",  # the coarsest level the encoder reads
                lambda logits: logits.sigmoid(), None),  # one sigmoid per class, no no-object class
}


@pytest.mark.parametrize("name", list(DETECTORS))
def test_detector_query_maps_equal_gradcam(name):
    build, suggested, probabilities, reshape = DETECTORS[name]
    model = build()
    d = cam_core.describe_model(model, transforms=hm.processor())
    assert d.kind == "detector" and d.classes == ["cat", "dog", "person", "cup"]
    assert d.default_layers == [suggested]
    x = photos(hm.SIZE)
    layers = d.resolve_layers(None)
    res = DetectorEngine(d.model.module, layers, ["gradcam"]).explain(
        x, lambda outs: [predicted_objects(o, 0.0, K) for o in outs])
    with torch.no_grad():
        out = model(pixel_values=x)
    scores, labels = probabilities(out.logits).max(-1)
    order = scores.argsort(dim=1, descending=True)[:, :K]
    for b in range(2):
        objects = res.objects[b]
        assert [o.label for o in objects] == labels[b, order[b]].tolist()
        np.testing.assert_allclose([o.score for o in objects], scores[b, order[b]].numpy(), rtol=1e-5)
        cx, cy, w, h = out.pred_boxes[b, order[b, 0]].tolist()
        np.testing.assert_allclose(objects[0].box, [(cx - w / 2) * 64, (cy - h / 2) * 64, (cx + w / 2) * 64,
                                                    (cy + h / 2) * 64], atol=1e-4)
    [info] = layers
    if name == "YOLOS":  # its class token before the patches, its detection tokens after them (its config says 6)
        assert (info.prefix_tokens, info.grid, info.suffix_tokens) == (1, (4, 4), 6)
    for k in range(K):  # the k-th query of each image: its class probability
        targets = [lambda logits, q=int(order[b, k]), c=int(labels[b, order[b, k]]): probabilities(logits[q])[c]
                   for b in range(2)]
        expected = reference("gradcam", Field(model), info.module, x, targets, reshape)
        got = torch.stack([res.object_maps[("gradcam", info.name)][b][k] for b in range(2)]).numpy()
        assert got.shape == expected.shape == (2, hm.SIZE, hm.SIZE) and expected.max() > 0.5
        np.testing.assert_allclose(got, expected, atol=2e-5)
