"""Runs that survive crashes, disks and each other: killed runs resumed,
two processes on one dataset, concurrent edits, unwritable and full output
folders, the exact sample count, ROAD on a train-mode model, extreme aspect
ratios, the maps of deleted datasets. Each process here is a real process
(tests/cam_child.py) against the session's mongod."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

import cam_core
import models

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket"]
KW = dict(methods=["gradcam", "layercam"], layers=["layer3", "layer4"])
FIELDS = ["{k}_gradcam_layer3", "{k}_gradcam_layer4", "{k}_layercam_layer3", "{k}_layercam_layer4"]


def small():
    return T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()])


@pytest.fixture
def shared(image_dir):
    """A persistent dataset (other processes load it by name) of 16 photos."""
    import fiftyone as fo

    ds = fo.Dataset(persistent=True)
    ds.add_samples([fo.Sample(filepath=image_dir[PHOTOS[i % 4]]) for i in range(16)])
    yield ds
    if fo.dataset_exists(ds.name):
        for key in cam_core.list_cam_runs(ds):
            ds.delete_run(key)
        ds.delete()


def child(spec, wait=True):
    """Starts tests/cam_child.py with ``spec``; returns its parsed output, or
    the process when ``wait`` is False."""
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "cam_child.py"), json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return finish(proc) if wait else proc


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        return {"returncode": proc.returncode, "stderr": err[-2000:]}
    return json.loads(out.strip().splitlines()[-1])


def run_files(output_dir, fields):
    """Every file in the run's field folders (whatever its name)."""
    folders = [os.path.join(output_dir, f) for f in fields]
    return sorted(os.path.join(d, n) for d in folders if os.path.isdir(d) for n in os.listdir(d))


def fields_of(key):
    return [f.format(k=key) for f in FIELDS]


def check_whole(ds, key, output_dir):
    """Every sample has every field of run ``key`` with its file, and the
    run's folders hold exactly the referenced files."""
    ds.reload()
    fields = fields_of(key)
    referenced = []
    for f in fields:
        paths = ds.values(f"{f}.map_path")
        assert None not in paths, f
        assert all(os.path.isfile(p) for p in paths)
        referenced += paths
    assert len(set(referenced)) == len(ds) * len(fields)
    on_disk = [p for p in run_files(output_dir, fields)]
    assert sorted(on_disk) == sorted(referenced)  # nothing unreferenced, no temporary left
    list(ds)  # every sample loads
    return {p: np.asarray(Image.open(p)) for p in referenced}


def wait_for(predicate, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.mark.parametrize("kill_before_write", [1, 3])
def test_killed_run_is_interrupted_and_resumes_to_the_whole(shared, tmp_path, kill_before_write):
    out = str(tmp_path / "maps")
    spec = dict(dataset=shared.name, run_key="ka", kwargs=dict(KW, output_dir=out), kill_before_write=kill_before_write)
    res = child(spec)
    assert res["returncode"] == -9  # killed after writing a batch's files, before its database update
    state = cam_core.run_status(shared, "ka")
    assert state.state == "interrupted" and state.num_samples == 4 * (kill_before_write - 1)
    shared.reload()  # this process's copy of the dataset predates the run
    assert shared.load_run_results("ka") is None
    assert len(os.listdir(os.path.join(out, "ka_gradcam_layer3"))) == 4 * kill_before_write  # one batch orphaned

    # a fresh run with the same key is refused: the key is taken, by a run that can be continued
    with pytest.raises(cam_core.CamArgumentError, match="already exists"):
        cam_core.compute_cams(shared, models.resnet18(), run_key="ka", transforms=small(), batch_size=4,
                              output_dir=out, **KW)
    results = cam_core.compute_cams(shared, models.resnet18(), run_key="ka", transforms=small(), batch_size=4,
                                    output_dir=out, skip_existing=True, **KW)
    assert results.num_samples == 16 and results.num_skipped == 0
    assert cam_core.run_status(shared, "ka").state == "complete"
    resumed = check_whole(shared, "ka", out)

    # the same maps as a run that was never killed
    ref_dir = str(tmp_path / "ref")
    cam_core.compute_cams(shared, models.resnet18(), run_key="ref", transforms=small(), batch_size=4,
                          output_dir=ref_dir, **KW)
    reference = check_whole(shared, "ref", ref_dir)
    for sid in shared.values("id"):
        for f in FIELDS:
            a = resumed[os.path.join(out, f.format(k="ka"), sid + ".png")]
            b = reference[os.path.join(ref_dir, f.format(k="ref"), sid + ".png")]
            assert np.array_equal(a, b)

    # delete_run removes every file of the run, also any left by a crash
    child(dict(spec, run_key="kb", kwargs=dict(KW, output_dir=str(tmp_path / "kb")), kill_before_write=2))
    shared.reload()
    shared.delete_run("kb")
    assert run_files(str(tmp_path / "kb"), fields_of("kb")) == []


def test_two_processes_two_keys_at_once(shared, tmp_path):
    procs = [child(dict(dataset=shared.name, run_key=k, kwargs=dict(KW, output_dir=str(tmp_path / k))), wait=False)
             for k in ("pa", "pb")]
    results = [finish(p) for p in procs]
    assert all(r.get("ok") for r in results), results
    for k in ("pa", "pb"):
        check_whole(shared, k, str(tmp_path / k))
        assert cam_core.run_status(shared, k).state == "complete"
    shared.first(), list(shared)


def test_two_processes_one_key_one_wins(shared, tmp_path):
    procs = [child(dict(dataset=shared.name, run_key="same", kwargs=dict(KW, output_dir=str(tmp_path / "same")),
                        sleep=0.3), wait=False) for _ in range(2)]
    results = [finish(p) for p in procs]
    won = [r for r in results if r.get("ok")]
    lost = [r for r in results if not r.get("ok")]
    assert len(won) == 1 and len(lost) == 1, results
    assert lost[0]["param"] == "run_key" and ("being computed now" in lost[0]["message"]
                                              or "already exists" in lost[0]["message"])
    import fiftyone.core.odm as foo

    runs = foo.get_db_conn().runs.count_documents({"_dataset_id": shared._doc.id, "key": "same"})
    assert runs == 1  # one run document: the loser registered nothing
    check_whole(shared, "same", str(tmp_path / "same"))


def test_continuing_a_running_run_is_refused_with_its_holder(shared, tmp_path):
    out = str(tmp_path / "live")
    proc = child(dict(dataset=shared.name, run_key="live", kwargs=dict(KW, output_dir=out), sleep=1.0), wait=False)
    try:
        wait_for(lambda: "live" in cam_core.runs.state.stored_run_keys(shared)
                 and cam_core.run_status(shared, "live").num_samples >= 4)
        # this process loaded the dataset before the run existed: its check reads the database
        with pytest.raises(cam_core.CamArgumentError, match=f"being computed now by process {proc.pid}"):
            cam_core.compute_cams(shared, models.resnet18(), run_key="live", transforms=small(), batch_size=4,
                                  output_dir=out, skip_existing=True, **KW)
        assert cam_core.run_status(shared, "live").state == "running"
    finally:
        res = finish(proc)
    assert res.get("ok"), res
    assert cam_core.run_status(shared, "live").state == "complete"
    check_whole(shared, "live", out)


def test_concurrent_edit_of_another_field(shared, tmp_path):
    out = str(tmp_path / "ed")
    proc = child(dict(dataset=shared.name, run_key="ed", kwargs=dict(KW, output_dir=out), sleep=0.8), wait=False)
    wait_for(lambda: "ed" in cam_core.runs.state.stored_run_keys(shared)
             and cam_core.run_status(shared, "ed").num_samples >= 4)
    shared.reload()
    shared.set_values("reviewer_note", [f"note {i}" for i in range(len(shared))])  # a new field, mid-run
    res = finish(proc)
    assert res.get("ok"), res
    check_whole(shared, "ed", out)
    assert shared.values("reviewer_note") == [f"note {i}" for i in range(16)]


def test_output_dir_not_writable_is_refused_before_anything(shared, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(cam_core.CamArgumentError, match="cannot be written under output_dir") as e:
        cam_core.compute_cams(shared, models.resnet18(), run_key="nw", transforms=small(),
                              output_dir=str(blocker / "maps"), **KW)
    assert e.value.param == "output_dir" and str(blocker / "maps") in str(e.value)
    shared.reload()
    assert "nw" not in shared.list_runs() and "nw_gradcam_layer3" not in shared.get_field_schema()
    # the same key with a fixed folder simply runs
    res = cam_core.compute_cams(shared, models.resnet18(), run_key="nw", transforms=small(),
                                output_dir=str(tmp_path / "ok"), **KW)
    assert res.num_samples == 16


def test_unclean_count_is_a_real_count(shared, monkeypatch):
    """What an unclean mongod restart does to the estimated count, made to happen."""
    import pymongo.collection

    monkeypatch.setattr(pymongo.collection.Collection, "estimated_document_count", lambda self, *a, **k: 0)
    assert len(shared) == 0  # what FiftyOne's estimate said after the restart
    res = cam_core.compute_cams(shared, models.resnet18(), run_key="uc", transforms=small(), storage="inline",
                                methods="gradcam", layers="layer4")
    assert res.num_samples == 16


@pytest.fixture
def small_disk(tmp_path):
    """A real 128 KiB tmpfs (about 30 files of one 4 KiB page each: one batch of
    16 maps fits, the next does not), unmounted after the test."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (the full-disk test needs root): {done.stderr.strip()}")
    yield str(mnt)
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_fails_the_run_with_its_cause_and_resumes(shared, small_disk):
    out = os.path.join(small_disk, "maps")
    with pytest.raises(OSError, match=r"could not write map file '.*\.png'.*No space left") as e:
        cam_core.compute_cams(shared, models.resnet18(), run_key="full", transforms=small(), batch_size=4,
                              output_dir=out, **KW)
    assert out in str(e.value)
    state = cam_core.run_status(shared, "full")
    assert state.state == "failed" and "No space left" in state.error
    shared.reload()
    written = [p for f in fields_of("full") for p in shared.values(f"{f}.map_path")]
    assert 0 < written.count(None) < len(written)  # some batches stored, then the disk filled
    # every sample holds all four maps or none, and nothing unreferenced is left
    per_sample = zip(*[shared.values(f"{f}.map_path") for f in fields_of("full")])
    assert all(all(p is None for p in s) or all(p is not None for p in s) for s in per_sample)
    assert sorted(run_files(out, fields_of("full"))) == sorted(p for p in written if p)

    subprocess.run(["mount", "-o", "remount,size=4m", small_disk], check=True)  # space freed
    res = cam_core.compute_cams(shared, models.resnet18(), run_key="full", transforms=small(), batch_size=4,
                                output_dir=out, skip_existing=True, **KW)
    assert res.num_samples == 16 and cam_core.run_status(shared, "full").state == "complete"
    check_whole(shared, "full", out)


def test_read_only_output_dir_is_refused_before_anything(shared, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", small_disk], check=True)
    with pytest.raises(cam_core.CamArgumentError, match="Read-only file system") as e:
        cam_core.compute_cams(shared, models.resnet18(), run_key="ro", transforms=small(),
                              output_dir=os.path.join(small_disk, "maps"), **KW)
    assert e.value.param == "output_dir"
    shared.reload()
    assert "ro" not in shared.list_runs()


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
