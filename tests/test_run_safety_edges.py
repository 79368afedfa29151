"""Runs at the edges: the exact sample count when mongod's estimate is wrong
(an unclean restart), ROAD on a train-mode model, extreme aspect ratios, and
the maps of deleted datasets removed."""
import os

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

import cam_core
import models
from run_checks import PHOTOS, shared, small  # noqa: F401 (a fixture)


def test_unclean_count_is_a_real_count(shared, monkeypatch):
    """What an unclean mongod restart does to the estimated count, made to happen."""
    import pymongo.collection

    monkeypatch.setattr(pymongo.collection.Collection, "estimated_document_count", lambda self, *a, **k: 0)
    assert len(shared) == 0  # what FiftyOne's estimate said after the restart
    res = cam_core.compute_cams(shared, models.resnet18(), run_key="uc", transforms=small(), storage="inline",
                                methods="gradcam", layers="layer4")
    assert res.num_samples == 16


def test_road_leaves_a_train_mode_model_untouched(dataset, image_dir):
    dataset.add_samples([__import__("fiftyone").Sample(filepath=image_dir[n]) for n in PHOTOS])
    model = models.resnet18().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cam_core.compute_cams(dataset, model, transforms=small(), methods="gradcam", layers="layer4",
                          faithfulness=True, storage="inline", classes=[f"c{i}" for i in range(1000)])
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert int(after["bn1.num_batches_tracked"]) == 0
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics
    assert all(r is not None for r in dataset.values("cam_gradcam_layer4.road"))


def test_extreme_aspect_ratio_map_is_bounded(dataset, tmp_path):
    import fiftyone as fo

    path = str(tmp_path / "strip.png")
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (20, 20000, 3), dtype=np.uint8)).save(path)
    dataset.add_sample(fo.Sample(filepath=path))
    transforms = T.Compose([T.Resize(224), T.CenterCrop(224), T.ToTensor()])  # short side 20 -> 224
    cam_core.compute_cams(dataset, models.resnet18(), transforms=transforms, methods="gradcam", layers="layer4",
                          output_dir=str(tmp_path / "maps"))
    label = dataset.first()["cam_gradcam_layer4"]
    with Image.open(label.map_path) as img:
        w, h = img.size
    assert max(w, h) == 4096 and w / h == pytest.approx(1000, rel=0.3)  # 224000 x 224 unbounded
    assert label.map_scale == pytest.approx(4096 / 224000, rel=1e-3)
    assert label.centroid_x == pytest.approx(0.5, abs=0.01)  # the crop's map sits in the middle


def test_maps_of_deleted_datasets_are_removed(image_dir, tmp_path):
    import fiftyone as fo

    gone, kept = fo.Dataset(), fo.Dataset()
    for ds in (gone, kept):
        ds.add_samples([fo.Sample(filepath=image_dir[n]) for n in PHOTOS[:2]])
        cam_core.compute_cams(ds, models.resnet18(), transforms=small(), methods="gradcam", layers="layer4",
                              output_dir=str(tmp_path / ds.name.replace(".", "_")))
    clone = gone.clone()  # references the deleted dataset's files: they stay
    default = fo.Dataset()
    default.add_samples([fo.Sample(filepath=image_dir[n]) for n in PHOTOS[:2]])
    cam_core.compute_cams(default, models.resnet18(), transforms=small(), methods="gradcam", layers="layer4")
    default_files = default.values("cam_gradcam_layer4.map_path")
    gone_files = gone.values("cam_gradcam_layer4.map_path")
    default.delete()
    gone.delete()
    # (other tests' deleted datasets left maps too: they are removed alike)
    removed = cam_core.remove_orphaned_maps()
    assert set(default_files) <= set(removed) and not set(gone_files) & set(removed)  # the clone uses gone's
    assert not any(os.path.exists(p) for p in default_files) and all(os.path.exists(p) for p in gone_files)
    clone.delete()
    assert set(gone_files) <= set(cam_core.remove_orphaned_maps())
    assert not any(os.path.exists(p) for p in gone_files)
    assert all(os.path.exists(p) for p in kept.values("cam_gradcam_layer4.map_path"))
    kept.delete()
