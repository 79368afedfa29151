"""Batches sized to memory (cam_core.compute.budget): the budget, the
measured cost of a batch, the planned sizes, and runs whose batches are
split to the budget (batch_size="auto", and a detector's integer batch)."""
import logging

import numpy as np
import pytest
import torch

import cam_core
from cam_core.compute import batch as batch_module
from cam_core.compute import budget
from cam_core.compute.budget import FIRST_BATCH, BatchPlanner, PeakMeter
from models import PlantedDetector, planted_scene
from test_operators import plugins_dir  # noqa: F401 (a fixture: the plugin, whose shard operator is queued)

GB = 2**30


def test_an_integer_batch_of_a_classifier_is_kept_whole_and_not_measured():
    planner = BatchPlanner(16, "cpu")
    assert not planner.measures and planner.settled and planner.size == 16
    items = list(range(40))
    assert list(planner.split(items)) == [items]
    with planner.measured(40):
        pass
    assert planner.per_image is None and planner.size == 16


def test_a_protected_integer_batch_starts_small_then_fills_the_budget_up_to_its_size():
    planner = BatchPlanner(16, "cpu", protect=True, budget=5 * GB)
    assert planner.settled and planner.size == FIRST_BATCH  # the loader keeps 16; its first part is measured
    parts = planner.split(list(range(16)))
    assert len(next(parts)) == FIRST_BATCH
    planner.observe(2, 2 * GB)  # 1 GB per image: 5 fit
    assert planner.size == 5
    assert [len(p) for p in parts] == [5, 5, 4]  # the rest of the batch, at the size planned meanwhile
    planner.observe(5, 1 * GB)  # cheaper per image: the size does not grow back
    assert planner.size == 5
    planner.observe(5, 10 * GB)  # 2 GB per image: 2 fit
    assert planner.size == 2
    planner.observe(1, 0.1 * GB)
    assert BatchPlanner(16, "cpu", protect=True, budget=100 * GB).size == FIRST_BATCH
    big = BatchPlanner(16, "cpu", protect=True, budget=100 * GB)
    big.observe(2, 2 * GB)
    assert big.size == 16  # never beyond the user's batch


def test_auto_is_measured_then_settled_at_the_largest_batch_that_fits(caplog):
    mb = 2**20
    planner = BatchPlanner("auto", "cpu", budget=3000 * mb)
    assert planner.auto and not planner.settled and planner.size == FIRST_BATCH
    with caplog.at_level(logging.INFO, logger="cam_core.compute.budget"):
        planner.observe(2, 200 * mb)  # 100 MB per image
    assert planner.settled and planner.size == 30
    assert "batches of 30 images" in caplog.text
    capped = BatchPlanner("auto", "cpu", budget=1000 * GB)
    capped.observe(2, 0.2 * GB)
    assert capped.size == budget.DEFAULT_LIMIT
    cuda = BatchPlanner("auto", "cuda", budget=1000 * GB)
    cuda.observe(2, 0.2 * GB)
    assert cuda.size == budget.AUTO_LIMIT["cuda"]


def test_an_image_over_the_budget_runs_alone_with_a_warning(caplog):
    planner = BatchPlanner("auto", "cpu", budget=GB)
    with caplog.at_level(logging.WARNING, logger="cam_core.compute.budget"):
        planner.observe(2, 6 * GB)
    assert planner.size == 1 and "more than the run's memory budget" in caplog.text


def test_where_memory_cannot_be_measured_auto_settles_at_a_fixed_size():
    planner = BatchPlanner("auto", "meta", budget=GB)  # a device PeakMeter cannot read
    with planner.measured(2):
        pass
    assert planner.settled and planner.size == budget.UNMEASURED
    unknown = BatchPlanner("auto", "meta")  # no budget readable: settled from the start
    assert unknown.budget is None and unknown.settled and unknown.size == budget.UNMEASURED


def test_the_peak_meter_sees_what_a_block_allocates_and_not_what_it_does_not():
    with PeakMeter("cpu") as idle:
        pass
    with PeakMeter("cpu") as busy:
        t = torch.ones(64 * 2**20)  # 256 MB, touched
        del t
    assert idle.peak is not None and idle.peak < 64 * 2**20
    assert busy.peak >= 240 * 2**20


def test_memory_freed_earlier_is_not_hidden_from_the_meter():
    # many mid-sized tensors freed before the block: glibc keeps such memory and the block reuses
    # it without the RSS growing; the meter returns it to the system first, so the reuse is seen
    keep = [torch.ones(2**18) for _ in range(400)]  # 400 x 1 MB
    del keep
    with PeakMeter("cpu") as again:
        keep = [torch.ones(2**18) for _ in range(400)]
        del keep
    assert again.peak >= 300 * 2**20


def test_the_budget_is_a_share_of_available_memory_and_a_cgroup_limit(tmp_path):
    total = budget._meminfo_available()
    assert total and total > 0
    assert 0 < budget.budget_bytes("cpu") <= total * budget.CPU_SHARE * 1.2
    limit, usage = tmp_path / "max", tmp_path / "current"
    limit.write_text("1000\n")
    usage.write_text("400\n")
    assert budget._cgroup_room(((str(limit), str(usage)),)) == 600
    limit.write_text("max\n")
    assert budget._cgroup_room(((str(limit), str(usage)),)) is None
    assert budget._cgroup_room(((str(tmp_path / "none"), str(usage)),)) is None


def _record_parts(monkeypatch):
    sizes = []
    explain = batch_module.explain

    def spy(plan, engine, group, ids, labels):
        sizes.append(len(group))
        return explain(plan, engine, group, ids, labels)

    monkeypatch.setattr(batch_module, "explain", spy)
    return sizes


def _scenes(dataset, tmp_path, n):
    import fiftyone as fo

    dataset.add_samples([fo.Sample(filepath=planted_scene(str(tmp_path / f"scene{i}.png"), marked=i % 2 == 0, seed=i))
                         for i in range(n)])


def _maps(dataset, field):
    return [np.asarray(m) for m in dataset.values(f"{field}.map")]


def test_a_detector_batch_is_split_to_the_budget_and_gives_the_same_maps(dataset, tmp_path, monkeypatch):
    _scenes(dataset, tmp_path, 6)
    kw = dict(methods="gradcam", score_threshold=0.0, batch_size=6, num_workers=0, device="cpu", storage="inline")
    sizes = _record_parts(monkeypatch)
    monkeypatch.setattr(budget, "budget_bytes", lambda device: 10**15)  # everything fits
    cam_core.compute_cams(dataset, PlantedDetector(), run_key="whole", **kw)
    assert sizes == [FIRST_BATCH, 6 - FIRST_BATCH]  # measured first, then the rest of the user's batch
    sizes.clear()
    monkeypatch.setattr(budget, "budget_bytes", lambda device: 1)  # nothing fits: one image at a time
    res = cam_core.compute_cams(dataset, PlantedDetector(), run_key="split", **kw)
    assert sizes == [FIRST_BATCH, 1, 1, 1, 1] and res.num_samples == 6
    for a, b in zip(_maps(dataset, "whole_gradcam_features"), _maps(dataset, "split_gradcam_features")):
        np.testing.assert_array_equal(a, b)
    whole, split = dataset.values("whole_detections.detections.gradcam_features_inside"), \
        dataset.values("split_detections.detections.gradcam_features_inside")
    np.testing.assert_allclose(np.array(whole, dtype=float), np.array(split, dtype=float), atol=1e-9)


def test_auto_batch_size_measures_a_first_batch_then_loads_the_planned_size(dataset, tmp_path, monkeypatch):
    import fiftyone as fo
    from skimage import data
    from PIL import Image

    import models

    paths = []
    for i in range(9):
        path = str(tmp_path / f"p{i}.png")
        Image.fromarray(data.astronaut()).resize((64 + 8 * (i % 2), 64)).save(path)
        paths.append(path)
    dataset.add_samples([fo.Sample(filepath=p) for p in paths])
    model = models.resnet18()
    from torchvision import transforms as T

    tf = T.Compose([T.Resize((64, 64)), T.ToTensor()])
    kw = dict(layers="layer3", transforms=tf, num_workers=0, device="cpu", storage="inline")
    sizes = _record_parts(monkeypatch)
    planned = []
    observe = BatchPlanner.observe

    def spy(self, n, peak):
        observe(self, n, peak)
        planned.append(self.size)

    monkeypatch.setattr(BatchPlanner, "observe", spy)
    monkeypatch.setattr(budget, "budget_bytes", lambda device: 10**15)
    res = cam_core.compute_cams(dataset, model, run_key="auto", batch_size="auto", **kw)
    assert res.num_samples == 9
    assert sizes == [FIRST_BATCH, 7] and planned[0] == budget.DEFAULT_LIMIT  # the rest in one planned batch
    sizes.clear()
    cam_core.compute_cams(dataset, model, run_key="fixed", batch_size=4, **kw)
    assert sizes == [4, 4, 1]  # an integer batch: the user's, unmeasured
    for a, b in zip(_maps(dataset, "auto_gradcam_layer3"), _maps(dataset, "fixed_gradcam_layer3")):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("value", [0, -1, 2.5, "big", True])
def test_a_bad_batch_size_is_refused_naming_auto(dataset, tmp_path, value):
    _scenes(dataset, tmp_path, 1)
    with pytest.raises(cam_core.CamArgumentError, match="batch_size must be an integer >= 1 or 'auto'") as e:
        cam_core.checks.check_compute_args(dataset, PlantedDetector(), batch_size=value)
    assert e.value.param == "batch_size"


def test_queue_cams_takes_auto_and_precision_and_its_shard_runs_with_them(dataset, image_dir, plugins_dir):
    import fiftyone as fo

    dataset.add_samples([fo.Sample(filepath=image_dir[n]) for n in ("astronaut", "coffee", "chelsea")])
    cam_core.register_factory("budget-resnet", "models:resnet18", overwrite=True)
    try:
        cam_core.queue_cams(dataset, "budget-resnet", num_shards=1, layers="layer3", batch_size="auto",
                            precision="bf16", device="cpu", num_workers=0, storage="inline")
        assert dataset.get_run_info("cam").config.precision == "bf16"
        status = cam_core.checks.run_shard(dataset, "cam", 0)
    finally:
        cam_core.unregister_factory("budget-resnet")
    assert status.state == "complete" and dataset.count("cam_gradcam_layer3") == 3
