"""What a family's adapter can tell the engine beyond a module: its suggested
layers (CamModel.suggested_layers), a detector's instance masks, and the
matching of stored boxes (clipped to the image) to a detector's boxes."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torchvision

import cam_core
from cam_core.models.cam_model import from_object


def _resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=3).eval()


def test_a_plain_model_imports_no_familys_library():
    # one fresh process for every family: asking the adapters about a torchvision model and its
    # transforms, and describing it, imports none of ultralytics, transformers, open_clip
    code = ("import json, sys, torchvision, cam_core; m = torchvision.models.resnet18(weights=None); "
            "from cam_core.models import adapters; assert adapters.adapt(m) is None; "
            "t = torchvision.models.ResNet18_Weights.DEFAULT.transforms(); assert adapters.adapt_transforms(t) is None; "
            "cam_core.describe_model(cam_core.CamModel(m, t)); "
            "print(json.dumps({lib: lib in sys.modules for lib in ('ultralytics', 'transformers', 'open_clip')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"ultralytics": False, "transformers": False, "open_clip": False}


def test_suggested_layers_replace_the_engines_default():
    module = _resnet()
    plain = cam_core.describe_model(cam_core.CamModel(module, torchvision.models.ResNet18_Weights.DEFAULT.transforms()))
    assert plain.default_layers == ["layer4"]
    model = cam_core.CamModel(module, torchvision.models.ResNet18_Weights.DEFAULT.transforms(),
                              suggested_layers=["layer2", "layer3"])
    described = cam_core.describe_model(model)
    assert described.default_layers == ["layer2", "layer3"]
    assert [i.name for i in described.resolve_layers(None)] == ["layer2", "layer3"]
    assert cam_core.default_layers(model) == ["layer2", "layer3"]
    copy = from_object(model)
    assert copy.suggested_layers == ["layer2", "layer3"] and copy.suggested_layers is not model.suggested_layers
    # a suggestion the dry forward does not confirm is not used
    model.suggested_layers = ["fc"]
    assert cam_core.describe_model(model).default_layers == ["layer4"]


def test_object_scores_against_masks():
    from cam_core.scoring.boxes import object_scores

    maps = torch.zeros(2, 10, 10)
    maps[0, 2:4, 2:4] = 1.0  # object 0's map: 4 px in its mask's 2x2 corner...
    maps[0, 6:8, 6:8] = 1.0  # ...and 4 px in object 1's mask
    maps[1, 0, 0] = 1.0  # object 1's map: outside every mask, inside its own box
    masks = torch.zeros(2, 10, 10, dtype=torch.bool)
    masks[0, 2:4, 2:4] = True
    masks[1, 5:9, 5:9] = True
    boxes = [(0, 0, 10, 10), (0, 0, 10, 10)]
    s = object_scores(maps, boxes, list(masks))
    assert s[0]["inside"] == 1.0 and s[0]["mask_inside"] == 0.5 and s[0]["mask_on_others"] == 0.5
    assert s[1]["inside"] == 1.0 and s[1]["mask_inside"] == 0.0 and s[1]["mask_on_others"] == 0.0
    assert set(object_scores(maps, boxes)[0]) == set(cam_core.types.DETECTION_SCORES)  # no masks, no mask scores
    s = object_scores(maps, boxes, [masks[0], None])  # an object without a mask has no mask scores
    assert s[1]["mask_inside"] is None and s[0]["mask_inside"] == 0.5


def test_detached_masks_and_their_crop_in_the_image():
    from cam_core.compute.detect import box_mask
    from cam_core.engine.detection import detached, predicted_objects
    from cam_core.media.geometry import Frame

    probabilities = torch.zeros(2, 1, 8, 12)
    probabilities[0, 0, 1:5, 2:7] = 0.9
    probabilities[1, 0, 5:, 9:] = 0.7
    out = detached({"boxes": torch.tensor([[2.0, 1, 7, 5], [9, 5, 14, 9]]), "labels": torch.tensor([1, 2]),
                    "scores": torch.tensor([0.2, 0.8], requires_grad=True), "masks": probabilities})
    assert out["masks"].dtype == torch.bool and out["masks"].shape == (2, 8, 12) and not out["scores"].requires_grad
    objects = predicted_objects(out, 0.0, 5)
    assert [o.label for o in objects] == [2, 1] and torch.equal(objects[1].mask, probabilities[0, 0] > 0.5)
    # an image of 24x12 px letterboxed to 12x8: half size, 1 px of padding on top and bottom
    frame = Frame(24, 12, [2.0, 2.0], [0.0, -2.0])
    assert box_mask(frame, objects[1].box, objects[1].mask).tolist() == [[True] * 5] * 4
    # a box over the padding and past the right edge is cut to the image, as its stored box is
    crop = box_mask(frame, objects[0].box, objects[0].mask)
    assert crop.shape == (2, 3) and crop.all()
    assert box_mask(frame, objects[0].box, None) is None


def test_stored_boxes_clipped_to_the_image_match_their_output_box():
    from cam_core.compute.detect import image_region, input_box
    from cam_core.engine.detection import truth_objects
    from cam_core.media.geometry import Frame

    # a 200x100 image letterboxed into a 64x64 input: 0.32 px per image px, 16 px of padding on top and bottom
    frame = Frame(200, 100, [200 / 64, 100 / 32], [0.0, -16 * 100 / 32])
    assert image_region(frame) == (0.0, 16.0, 64.0, 48.0)
    scores = torch.tensor([0.9], requires_grad=True)
    output = {"boxes": torch.tensor([[32.0, 0.0, 64.0, 32.0]]), "labels": torch.tensor([3]), "scores": scores}
    stored = [0.5, 0.0, 0.5, 0.5]  # the output box as a predictor stores it: clipped to the image
    box = input_box(frame, stored)
    assert box == (32.0, 16.0, 64.0, 32.0)  # IoU 0.5 with the unclipped box: no match without the region
    [unmatched] = truth_objects({k: v.detach() for k, v in output.items()}, [box], [3], 0.5)
    assert unmatched.score is None and not unmatched.target(output).requires_grad
    [matched] = truth_objects({k: v.detach() for k, v in output.items()}, [box], [3], 0.5, image_region(frame))
    assert matched.score == pytest.approx(0.9)
    loss = matched.target(output)
    assert float(loss) == pytest.approx(1.9) and loss.requires_grad  # IoU 1 + its score
