"""A process killed (SIGKILL) while a run's results are saved: once the
results are in FiftyOne's GridFS and before the run's record points at them
(tests/cam_child.py ``kill_in_results``). A run is never ``complete`` without
readable results: one run is left ``interrupted`` and continues; a sharded
run whose last worker died there gets its results when its status is read."""
import os

import fiftyone as fo

import cam_core
import models
from run_checks import KW, PHOTOS, shared, small  # noqa: F401 (a fixture)
from test_operators import plugins_dir  # noqa: F401 (a fixture: queue_cams queues operators)
from test_run_safety import child


def test_killed_while_saving_results_is_never_complete_without_them(shared, tmp_path):
    out = str(tmp_path / "maps")
    spec = dict(dataset=shared.name, run_key="rs", kwargs=dict(KW, output_dir=out), kill_in_results=True)
    assert child(spec).get("returncode") == -9
    assert cam_core.run_status(shared, "rs").state == "interrupted"  # every map stored, the results not
    shared.reload()
    assert shared.load_run_results("rs", cache=False) is None
    resume = dict(transforms=small(), batch_size=4, output_dir=out, skip_existing=True, **KW)
    assert cam_core.compute_cams(shared, models.resnet18(), run_key="rs", **resume).num_samples == 16
    assert cam_core.run_status(shared, "rs").state == "complete"

    # continued once more and killed while its results are replaced: FiftyOne deleted the old ones first
    assert child(dict(spec, kwargs=dict(KW, output_dir=out, skip_existing=True))).get("returncode") == -9
    assert cam_core.run_status(shared, "rs").state == "interrupted"  # reading the status repairs the record
    shared.reload()
    assert shared.load_run_results("rs", cache=False) is None  # not an AttributeError
    assert cam_core.compute_cams(shared, models.resnet18(), run_key="rs", **resume).num_samples == 16
    shared.reload()
    results = shared.load_run_results("rs", cache=False)
    assert results.num_samples == 16 and results.num_skipped == 0
    assert cam_core.run_status(shared, "rs").state == "complete"


def test_a_sharded_run_whose_last_worker_dies_saving_gets_its_results(image_dir, plugins_dir, tmp_path):
    ds = fo.Dataset(persistent=True)
    ds.add_samples([fo.Sample(filepath=image_dir[p]) for p in PHOTOS])
    cam_core.register_factory("results-resnet", "models:slow_resnet18", kwargs={"seconds": 0.0}, overwrite=True)
    try:
        cam_core.queue_cams(ds, "results-resnet", num_shards=2, run_key="sr", output_dir="results-saved-maps",
                            methods="gradcam", layers="model.layer4", batch_size=2, num_workers=0)
        assert child(dict(dataset=ds.name, run_key="sr", shard=0)).get("ok")
        assert child(dict(dataset=ds.name, run_key="sr", shard=1, kill_in_results=True)).get("returncode") == -9
        status = cam_core.run_status(ds, "sr")  # both shards done: complete, and its results are saved now
        assert status.state == "complete" and status.num_samples == 4
        ds.reload()
        results = ds.load_run_results("sr", cache=False)
        assert results is not None and results.num_samples == 4 and results.num_skipped == 0
        assert all(os.path.isfile(p) for p in ds.values("sr_gradcam_model_layer4.map_path"))
    finally:
        cam_core.unregister_factory("results-resnet")
        if "sr" in ds.list_runs():
            ds.delete_run("sr")
        ds.delete()
