"""YOLO maps equal grad-cam's own, for the same hand-written target: a kept
box's class score at the anchor that produced it, read from the model's own
decoded predictions, with the anchors of ultralytics' own non-maximum
suppression (the adapter's output is not used to build the targets)."""
import warnings

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import cam_core
import yolo_models as ym
from cam_core.engine import CamEngine
from cam_core.engine.detector import DetectorEngine
from cam_core.engine.detection import predicted_objects
from cam_core.engine.targets import classifier_targets

K = 3  # objects explained per image


class Decoded(torch.nn.Module):
    """The task model's own decoded predictions (B, 4 + classes + extra,
    anchors), or a classifier's logits: what grad-cam is given."""

    def __init__(self, task, index=0):
        super().__init__()
        self.task, self.index = task, index

    def forward(self, x):
        y = self.task(x)[self.index]
        return y[0] if isinstance(y, (tuple, list)) else y


def anchor_score(pairs):
    """The hand-written target: the sum of the class scores at (label, anchor) pairs of one image."""
    return lambda out: sum(out[4 + int(label), int(anchor)] for label, anchor in pairs)


def kept(task, x):
    """Per image its (label, anchor, score) rows kept by ultralytics' own NMS, best first."""
    from ultralytics.utils.nms import non_max_suppression

    head = task.model[-1]
    with torch.no_grad():
        y = Decoded(task).eval()(x)
    rows, anchors = non_max_suppression(y, 0.0, 0.7, nc=head.nc, rotated=type(head).__name__ == "OBB",
                                        return_idxs=True)
    return [[(int(r[5]), int(a), float(r[4])) for r, a in zip(rw, an)] for rw, an in zip(rows, anchors)]


def grad_cam(cls, model, module, x, targets):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with cls(model, [module]) as cam:
            return cam(x, targets=targets)


@pytest.mark.parametrize("task_name", ["detect", "segment", "pose", "obb"])
def test_box_maps_equal_gradcam(task_name):
    yolo = ym.yolo(task_name, seed=1)
    task = yolo.model
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    d = cam_core.describe_model(yolo)
    layers = d.resolve_layers(["model.model.15", "model.model.9"])
    res = DetectorEngine(d.model.module, layers, ["gradcam"]).explain(
        x, lambda outs: [predicted_objects(o, 0.0, K) for o in outs])
    rows = kept(task, x)
    for b in range(2):
        objects = res.objects[b]
        assert len(objects) == K
        # the boxes explained are the model's own, best first, with its scores
        assert [o.label for o in objects] == [r[0] for r in rows[b][:K]]
        np.testing.assert_allclose([o.score for o in objects], [r[2] for r in rows[b][:K]], rtol=1e-6)
    reference = Decoded(task)
    for info in layers:
        key = ("gradcam", info.name)
        for k in range(K):  # the k-th object of each image, as the engine's k-th backward
            targets = [anchor_score([rows[b][k][:2]]) for b in range(2)]
            expected = grad_cam(GradCAM, reference, info.module, x, targets)
            got = torch.stack([res.object_maps[key][b][k] for b in range(2)]).numpy()
            np.testing.assert_allclose(got, expected, atol=1e-5)
        # the sample map: all its objects at once
        expected = grad_cam(GradCAM, reference, info.module, x, [anchor_score([r[:2] for r in rows[b][:K]])
                                                                 for b in range(2)])
        np.testing.assert_allclose(res.maps[key].numpy(), expected, atol=1e-5)
        assert expected.max() > 0.5  # real maps (an object's own may be all negative before the ReLU: empty)


def test_the_suggested_level_serves_every_box():
    # P5 (model.model.21) is computed after P3's anchors are scored: a box of a P3 anchor has no
    # gradient there, an empty map; P3 (model.model.15, suggested) feeds every level
    yolo = ym.yolo("detect", seed=4)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    d = cam_core.describe_model(yolo)
    assert d.default_layers == ["model.model.15"]
    layers = d.resolve_layers(["model.model.15", "model.model.21"])
    res = DetectorEngine(d.model.module, layers, ["layercam"]).explain(
        x, lambda outs: [predicted_objects(o, 0.0, 40) for o in outs])
    anchors = [a for _, a, _ in kept(yolo.model, x)[0][:40]]
    fine = [k for k, a in enumerate(anchors) if a < 64]  # P3's 8x8 anchors come first
    assert fine and len(fine) < len(anchors)
    p3, p5 = res.object_maps[("layercam", "model.model.15")][0], res.object_maps[("layercam", "model.model.21")][0]
    assert all(float(p3[k].max()) > 0.5 for k in range(len(anchors)))
    assert all(float(p5[k].max()) == 0 for k in fine)


def test_classifier_maps_equal_gradcam_on_its_logits():
    yolo = ym.yolo("classify", seed=2)
    task = yolo.model
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    d = cam_core.describe_model(yolo)
    module = d.model.module
    with torch.no_grad():
        probabilities, logits = task.eval()(x)
        assert torch.equal(module(x), logits)  # the logits, before the head's softmax
    assert torch.allclose(probabilities, logits.softmax(1))
    [layer] = d.resolve_layers(None)
    engine = CamEngine(module, [layer], ["gradcam"])
    res = engine.explain(x, lambda out: classifier_targets(out, None))
    engine.close()
    targets = [ClassifierOutputTarget(int(i)) for i in logits.argmax(1)]
    expected = grad_cam(GradCAM, Decoded(task, index=1), layer.module, x, targets)
    np.testing.assert_allclose(res.maps[("gradcam", layer.name)].numpy(), expected, atol=2e-5)
    assert expected.max() > 0.5


def test_end_to_end_heads_explain_their_own_rows():
    # YOLO26 / YOLOv10 with their one-to-one head: no NMS, the head's own top-k rows (box, score, class);
    # a row's score is its class score gathered at its anchor, differentiable
    from ultralytics import YOLO
    from ultralytics.utils.nms import non_max_suppression

    torch.manual_seed(3)
    yolo = YOLO("yolo26n.yaml")
    yolo.overrides["imgsz"] = yolo.model.args["imgsz"] = 64
    yolo.model.end2end = True  # as an end-to-end model predicts
    x = ym._calibrate(yolo.model, 64, 3)
    head = yolo.model.model[-1]
    for branch in head.one2one_cv3:
        ym._unit_logits(yolo.model, branch[-1], x)
    assert head.reg_max == 1  # no distribution: each side's distance is the conv's output, in cells
    with torch.no_grad():
        for branch in head.one2one_cv2:  # boxes one cell from their anchor (random ones can be inverted)
            branch[-1].weight.zero_()
            branch[-1].bias.fill_(1.0)
    x = x[-2:]  # two noise images its class logits were scaled on (unsaturated scores, no ties)
    d = cam_core.describe_model(yolo)
    [layer] = d.resolve_layers(None)
    res = DetectorEngine(d.model.module, [layer], ["gradcam"]).explain(
        x, lambda outs: [predicted_objects(o, 0.0, 2) for o in outs])
    reference = Decoded(yolo.model)
    with torch.no_grad():
        y = reference.eval()(x)  # (B, k, 6): x1, y1, x2, y2, score, class per row
    rows, kept = non_max_suppression(y, 0.0, end2end=True, return_idxs=True)
    peaks = []
    for k in range(2):
        for b in range(2):
            assert res.objects[b][k].label == int(rows[b][k, 5])
            assert res.objects[b][k].score == pytest.approx(float(rows[b][k, 4]))
        targets = [lambda out, r=int(kept[b][k]): out[r, 4] for b in range(2)]
        expected = grad_cam(GradCAM, reference, layer.module, x, targets)
        got = torch.stack([res.object_maps[("gradcam", layer.name)][b][k] for b in range(2)]).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)
        peaks.append(expected.max())
    assert max(peaks) > 0.5  # real maps
