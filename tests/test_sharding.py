"""One run over several workers: queue_cams splits it into shards queued as
delegated operations; three real ``fiftyone delegated launch`` workers
execute them; one is SIGKILLed in the middle of a shard; resume_run
re-queues what it left. Afterwards every sample has every field exactly once
with its file, and no file is unreferenced."""
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import fiftyone as fo

import cam_core
from test_operators import photos, plugin_env, plugins_dir, registered, run_worker, uri  # noqa: F401 (fixtures)

KW = dict(methods=["gradcam", "layercam"], layers=["model.layer3", "model.layer4"], batch_size=4, num_workers=0)


@pytest.fixture(scope="module")
def slow_model():
    cam_core.register_factory("slow-resnet", "models:slow_resnet18", overwrite=True)
    yield "slow-resnet"
    cam_core.unregister_factory("slow-resnet")


@pytest.fixture
def many(image_dir):
    ds = fo.Dataset(persistent=True)
    names = ["astronaut", "chelsea", "coffee", "rocket"]
    ds.add_samples([fo.Sample(filepath=image_dir[names[i % 4]]) for i in range(240)])
    yield ds
    for key in cam_core.list_cam_runs(ds):
        ds.delete_run(key)
    ds.delete()


def start_worker(plugins_dir, log_dir):
    log = open(os.path.join(log_dir, f"worker-{time.time_ns()}.log"), "w")
    cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    env = dict(plugin_env(plugins_dir), OMP_NUM_THREADS="1")  # one torch thread each: 2 cores, 3 workers
    return subprocess.Popen([cli, "delegated", "launch"], env=env, stdout=log, stderr=subprocess.STDOUT)


def stop(worker):
    if worker.poll() is None:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_three_workers_a_kill_and_a_resume(many, slow_model, plugins_dir, tmp_path, monkeypatch):
    out = str(tmp_path / "maps")
    # workers write only under their output root (they inherit this environment)
    monkeypatch.setenv(cam_core.checks.OUTPUT_ROOT_ENV, str(tmp_path))
    op_ids = cam_core.queue_cams(many, slow_model, num_shards=6, run_key="sh", output_dir=out, **KW)
    assert len(op_ids) == 6
    status = cam_core.run_status(many, "sh")
    assert status.state == "queued" and [s["state"] for s in status.shards] == ["queued"] * 6
    many.reload()
    assert "sh" in many.list_runs() and "sh_gradcam_model_layer3" in many.get_field_schema()

    logs = tempfile.mkdtemp(prefix="cam-shard-logs-")
    workers = [start_worker(plugins_dir, logs) for _ in range(3)]
    try:
        def mid_shard():
            for s in cam_core.run_status(many, "sh").shards:
                if s["state"] == "running" and 4 <= s["num_samples"] <= 32:
                    return s
        victim = wait_for(mid_shard, 240, "a shard in the middle of its work")
        pid = int(victim["holder"].rsplit(":", 1)[1])
        killed = [w for w in workers if w.pid == pid]
        assert killed, (victim, [w.pid for w in workers])
        killed[0].send_signal(signal.SIGKILL)
        killed[0].wait()

        def settled():
            s = cam_core.run_status(many, "sh")
            return s if all(x["state"] in ("complete", "interrupted") for x in s.shards) else None
        status = wait_for(settled, 300, "the other shards")
        assert [x["state"] for x in status.shards].count("interrupted") == 1
        assert status.state == "interrupted" and status.num_samples < 240
        many.reload()
        assert many.load_run_results("sh") is None  # not complete: no results yet

        requeued = cam_core.resume_run(many, "sh")
        assert len(requeued) == 1
        assert cam_core.resume_run(many, "sh") == []  # queued already: nothing more to do
        status = wait_for(lambda: (lambda s: s if s.state == "complete" else None)(cam_core.run_status(many, "sh")),
                          240, "the resumed shard")
    finally:
        for w in workers:
            stop(w)
    logs_text = "".join(open(os.path.join(logs, f)).read() for f in os.listdir(logs))

    assert status.num_samples == 240 and status.num_skipped == 0, logs_text[-3000:]
    many.reload()
    results = many.load_run_results("sh", cache=False)
    assert results.num_samples == 240
    fields = ["sh_gradcam_model_layer3", "sh_gradcam_model_layer4", "sh_layercam_model_layer3",
              "sh_layercam_model_layer4"]
    referenced = []
    for f in fields:
        paths = many.values(f"{f}.map_path")
        assert None not in paths and all(os.path.isfile(p) for p in paths)
        referenced += paths
    assert len(set(referenced)) == 240 * 4
    on_disk = sorted(os.path.join(out, f, n) for f in fields for n in os.listdir(os.path.join(out, f)))
    assert on_disk == sorted(referenced)
    list(many)


def test_queue_cams_refuses_what_workers_cannot_do(dataset, image_dir, plugins_dir):  # noqa: F811
    import models

    dataset.add_samples([fo.Sample(filepath=image_dir["astronaut"]) for _ in range(3)])
    with pytest.raises(cam_core.CamArgumentError, match="cannot be sent to other processes") as e:
        cam_core.queue_cams(dataset, models.resnet18(), num_shards=2)
    assert e.value.param == "model"
    cam_core.register_model("here-only", models.resnet18())
    with pytest.raises(cam_core.CamArgumentError, match="in this process only"):
        cam_core.queue_cams(dataset, "here-only", num_shards=2)
    # a library model: every worker would download its weights (or get other random ones)
    with pytest.raises(cam_core.CamArgumentError, match="cannot be split into jobs: every worker would build it"):
        cam_core.queue_cams(dataset, "torchvision:resnet18", num_shards=2)
    cam_core.register_factory("slow-resnet-2", "models:slow_resnet18", kwargs={"seconds": 0.0}, overwrite=True)
    try:
        # a folder no worker would write to: outside the output root
        with pytest.raises(cam_core.CamArgumentError, match="outside the allowed root") as e:
            cam_core.queue_cams(dataset, "slow-resnet-2", num_shards=2, output_dir="/var/tmp/elsewhere")
        assert e.value.param == "output_dir"
        for bad in (0, 4, 1.5, True):
            with pytest.raises(cam_core.CamArgumentError, match="num_shards must be an integer from 1 to") as e:
                cam_core.queue_cams(dataset, "slow-resnet-2", num_shards=bad, layers=["model.layer4"])
            assert e.value.param == "num_shards"
        dataset.reload()
        assert dataset.list_runs() == []  # nothing recorded, nothing queued
    finally:
        cam_core.unregister_factory("slow-resnet-2")


def test_the_compute_operator_splits_a_run_into_jobs(photos, registered, plugins_dir):  # noqa: F811
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState
    import fiftyone.operators as foo

    photos.persistent = True  # the worker is another process
    op = foo.get_operator(uri("compute_cams"))
    queued = op(photos, "tiny-resnet", layers=["layer4"], methods=["gradcam"], run_key="split", num_shards=2)
    assert len(queued["queued"]) == 2 and "2 delegated jobs" in queued["message"]
    assert [s["state"] for s in cam_core.run_status(photos, "split").shards] == ["queued", "queued"]
    from bson import ObjectId

    ids = [ObjectId(i) for i in queued["queued"]]
    log = run_worker(plugins_dir, ids[0])  # one worker takes both, the newest first
    dos = DelegatedOperationService()
    assert [dos.get(i).run_state for i in ids] == [ExecutionRunState.COMPLETED] * 2, open(log).read()[-3000:]
    status = cam_core.run_status(photos, "split")
    assert status.state == "complete" and status.num_samples == 4
    photos.reload()
    assert photos.load_run_results("split", cache=False).num_samples == 4
    assert None not in photos.values("split_gradcam_layer4.map_path")
