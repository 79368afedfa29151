"""compute_cams with the models users bring: library models by name (timm,
torchvision), a segmentation model with a ground-truth region, FiftyOne's
TorchImageModel, and a torchvision preset decoded in DataLoader workers."""
import numpy as np
import pytest
import torch
from PIL import Image

import cam_core
import models
from inputs import add, classes, small


def test_library_model_names_and_view(dataset, image_dir):
    add(dataset, image_dir, ["astronaut", "chelsea", "coffee"])
    torch.manual_seed(0)
    model = cam_core.load_model("timm:deit_tiny_distilled_patch16_224", pretrained=False)
    assert model.transforms is not None and model.name == "timm:deit_tiny_distilled_patch16_224"
    view = dataset.skip(1)
    res = cam_core.compute_cams(view, model, methods=["gradcam", "eigencam"], run_key="vit")
    assert res.num_samples == 2
    assert dataset.count("vit_gradcam_blocks_11_norm1") == 2 and dataset.first()["vit_gradcam_blocks_11_norm1"] is None
    config = dataset.get_run_info("vit").config
    assert config.model == "timm:deit_tiny_distilled_patch16_224" and config.model_kwargs == {"pretrained": False}
    tv = cam_core.load_model("torchvision:resnet18", weights=None)
    assert len(tv.classes) == 1000 and tv.classes[0] == "tench"  # names of the architecture's outputs
    with pytest.raises(ValueError, match="unknown model 'resnet18'"):
        cam_core.load_model("resnet18")


def test_segmentation_ground_truth_region(dataset, image_dir):
    import fiftyone as fo

    # a ground-truth mask smaller than the image, stretched over it as the App draws it
    mask = np.zeros((30, 45), np.uint8)
    mask[10:20, 5:20] = 2
    mask[0:5, 30:45] = 1
    add(dataset, image_dir, ["chelsea", "coffee"], gt=[fo.Segmentation(mask=mask), fo.Segmentation(mask=mask)])
    dataset.mask_targets = {"gt": {1: "cat", 2: "dog"}}
    dataset.save()
    names = ["background"] + [f"c{i}" for i in range(1, 21)]
    names[8], names[12] = "cat", "dog"
    res = cam_core.compute_cams(dataset, models.deeplab(), methods=["gradcam", "hirescam"], target="field:gt",
                                classes=names, transforms=small())
    assert res.num_samples == 2
    heat = dataset.first()["cam_hirescam_backbone_16"]
    assert heat.target_label == "dog" and heat.target_index == 12  # the larger region, mapped by name
    cam_core.compute_cams(dataset, models.deeplab(), methods="gradcam", target="field:gt", target_class="cat",
                          classes=names, transforms=small(), run_key="cat")
    assert dataset.values("cat_gradcam_backbone_16.target_label") == ["cat", "cat"]
    with pytest.raises(ValueError, match="a segmentation model needs an Segmentation field"):
        dataset.set_values("label", [fo.Classification(label="x")] * 2)
        cam_core.compute_cams(dataset, models.deeplab(), target="field:label", transforms=small(), run_key="x")


def test_fiftyone_torch_image_model(dataset, image_dir):
    """A zoo-style TorchImageModel: its _model, transforms and classes are used,
    also inside its `with` block, which turns gradients off."""
    import torchvision
    import fiftyone.utils.torch as fout

    torch.manual_seed(0)
    config = fout.TorchImageModelConfig(dict(
        entrypoint_fcn="torchvision.models.resnet18", entrypoint_args={"weights": None},
        transforms=small(), output_processor_cls="fiftyone.utils.torch.ClassifierOutputProcessor",
        classes=classes(), ragged_batches=False,
    ))
    model = fout.TorchImageModel(config)
    add(dataset, image_dir, ["astronaut", "chelsea"])
    with model:
        assert not torch.is_grad_enabled()
        res = cam_core.compute_cams(dataset, model, methods=["gradcam", "layercam"])
        assert not torch.is_grad_enabled()  # the caller's state is kept
    assert res.num_samples == 2
    heat = dataset.first()["cam_layercam_layer4"]
    assert heat.target_label == f"class{heat.target_index}"
    assert np.asarray(Image.open(heat.map_path)).shape == (64, 64)
    assert dataset.get_run_info("cam").config.model == "TorchImageModel"


def test_dataloader_workers_with_a_torchvision_preset(dataset, image_dir):
    """Images decoded in 2 worker processes through the weights' own preset
    (resize 256, crop 224), bad files still skipped, order kept."""
    import torchvision

    names = ["astronaut", "truncated", "chelsea", "coffee", "missing", "rocket"]
    add(dataset, image_dir, names)
    preset = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    res = cam_core.compute_cams(dataset, models.resnet18(), methods="gradcam", transforms=preset,
                                batch_size=2, num_workers=2)
    assert res.num_samples == 4 and res.num_skipped == 2
    have = [p is not None for p in dataset.values("cam_gradcam_layer4.map_path")]
    assert have == [True, False, True, True, False, True]
    w, h = Image.open(image_dir["chelsea"]).size
    arr = np.asarray(Image.open(dataset.skip(2).first()["cam_gradcam_layer4"].map_path))
    # the whole image at the scale the model saw: resized to a short side of 256, the 224 crop inside
    assert arr.shape == (256, int(256 * w / h))
    assert arr[:, :16].max() == 0 and arr[:, -16:].max() == 0  # outside the crop
