"""compute_cams refuses misuse before any work: bad methods, layers, targets,
classes, run keys, storage, batch sizes and devices; empty views and non-image
datasets; fields that belong to others. Nothing is written when it refuses."""
import numpy as np
import pytest

import cam_core
import models
from inputs import add, classes, small


def assert_nothing_written(dataset, before):
    assert dataset.get_field_schema().keys() == before
    assert dataset.list_runs() == []


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(methods=["gradcam", "gradkam"]), r"unknown method 'gradkam'; valid methods: gradcam, hirescam"),
        (dict(layers=["layer9"]), r"unknown layer 'layer9'.*Closest layers"),
        (dict(layers=["fc"]), r"layer 'fc' cannot be explained"),
        (dict(target="class:zebra", classes=classes()), r"class 'zebra' is not one of the model's 1000 classes"),
        (dict(target="zebra"), r"class 'zebra' given by name, but the model has no class names"),
        (dict(target=1000), r"class index 1000 is out of range"),
        (dict(target="field:nope"), r"target field 'nope' does not exist; label fields: ground_truth, mask"),
        (dict(target="field:mask"), r"target field 'mask' holds Segmentation; a classification model needs an Classification field"),
        (dict(target="field:ground_truth", classes=classes()), r"labels \['zebra'\] of field 'ground_truth' are not among"),
        (dict(run_key="bad key"), r"run_key must be a valid Python identifier"),
        (dict(storage="jpeg"), r"storage must be one of"),
        (dict(batch_size=0), r"batch_size must be an integer >= 1"),
        (dict(device="cuda"), r"torch sees no CUDA device"),
        (dict(classes=["a", "b"]), r"2 class names given, but the model has 1000 outputs"),
    ],
)
def test_misuse_is_refused_before_any_work(dataset, image_dir, kwargs, message):
    import fiftyone as fo

    add(dataset, image_dir, ["astronaut"], ground_truth=[fo.Classification(label="zebra")],
        mask=[fo.Segmentation(mask=np.zeros((4, 4), np.uint8))])
    before = dataset.get_field_schema().keys()
    with pytest.raises(ValueError, match=message):
        cam_core.compute_cams(dataset, models.resnet18(), transforms=small(), **kwargs)
    assert_nothing_written(dataset, before)


def test_empty_view_and_non_images_are_refused(dataset, image_dir):
    import fiftyone as fo

    add(dataset, image_dir, ["astronaut"])
    with pytest.raises(ValueError, match="the collection is empty"):
        cam_core.compute_cams(dataset.limit(0), models.resnet18(), transforms=small())
    videos = fo.Dataset()
    try:
        videos.add_sample(fo.Sample(filepath="/tmp/clip.mp4"))
        with pytest.raises(ValueError, match="media type is 'video'"):
            cam_core.compute_cams(videos, models.resnet18())
    finally:
        videos.delete()
    with pytest.raises(TypeError, match="samples must be a fo.Dataset or view"):
        cam_core.compute_cams([image_dir["astronaut"]], models.resnet18())


def test_fields_of_others_are_never_overwritten(dataset, image_dir):
    import fiftyone as fo

    add(dataset, image_dir, ["astronaut"], cam_gradcam_layer4=[fo.Classification(label="mine")])
    with pytest.raises(ValueError, match=r"fields \['cam_gradcam_layer4'\] already exist and do not belong"):
        cam_core.compute_cams(dataset, models.resnet18(), transforms=small())
    assert dataset.first()["cam_gradcam_layer4"].label == "mine"
