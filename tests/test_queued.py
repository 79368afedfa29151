"""The checks on queued work and sharded runs, with real ``fiftyone delegated
launch`` workers:

- a model factory that calls ``sys.exit`` is a clear refusal in the
  register_cam_model operator, and a failed operation (its shard failed with
  the cause) in a worker, which lives on;
- a worker checks a sharded run's stored arguments as the form checks a
  user's: a poisoned ``output_dir``, model or view stage fails the shard,
  writing nothing;
- "Split into jobs" with a library model is refused by the form, with the
  reason cam_core gives;
- a worker killed mid-shard: the run reads ``interrupted``, naming the shard;
  resume_run marks the dead worker's operation failed ("taken over"); the
  worker completing the last shard gives the run its sidebar group.

A private mongod (conftest); ``tiny-resnet`` and a slowed ResNet-18
registered as factories; photos written as files.
"""
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from bson import ObjectId
from fiftyone.operators.executor import ExecutionError, ExecutionRunState, resolve_type

import fiftyone as fo
import fiftyone.operators as foo
import cam_core
from test_operators import photos, plugin_env, plugins_dir, registered, uri  # noqa: F401 (fixtures)


def _worker(plugins_dir, env=None):
    """A real ``fiftyone delegated launch`` worker; its log is ``worker.log_path``."""
    log = tempfile.NamedTemporaryFile(prefix="cam-worker-", suffix=".log", delete=False)
    cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    worker = subprocess.Popen([cli, "delegated", "launch"], env=dict(plugin_env(plugins_dir), **(env or {})),
                              stdout=log, stderr=subprocess.STDOUT)
    worker.log_path = log.name
    return worker


def _stop(worker):
    if worker.poll() is None:
        worker.send_signal(signal.SIGINT)  # the worker's own way out
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _wait(predicate, timeout, what, worker=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None:  # a worker that died says why
            assert worker.poll() is None, f"the worker died:\n{open(worker.log_path).read()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _ops_done(op_ids):
    from fiftyone.operators.delegated import DelegatedOperationService

    dos = DelegatedOperationService()
    docs = [dos.get(ObjectId(i)) for i in op_ids]
    done = (ExecutionRunState.COMPLETED, ExecutionRunState.FAILED)
    return docs if all(d.run_state in done for d in docs) else None


def test_a_factory_that_calls_sys_exit_is_refused_and_fails_only_its_operation(photos, plugins_dir):  # noqa: F811
    # in the App server: a refusal that says what happened, nothing registered
    with pytest.raises(ExecutionError, match=r"factory 'models:exit_now' of model 'quits' failed: SystemExit: it "
                                             r"called sys.exit\(3\)"):
        foo.get_operator(uri("register_cam_model"))("quits", "models:exit_now")
    assert "quits" not in cam_core.checks.registered_factories()

    # in a worker: built here, it exits in every other process
    photos.persistent = True
    cam_core.register_factory("quits-elsewhere", "models:exit_elsewhere", kwargs={"pid": os.getpid()}, overwrite=True)
    try:
        op = foo.get_operator(uri("compute_cams"))
        kw = dict(layers=["model.layer4"], methods=["gradcam"], batch_size=2)
        queued = op(photos, "quits-elsewhere", run_key="split", num_shards=2, **kw)["queued"]
        single = op(photos, "quits-elsewhere", run_key="single", delegate=True, **kw).result["id"]
        worker = _worker(plugins_dir)
        try:
            docs = _wait(lambda: _ops_done(queued + [str(single)]), 300, "the three operations", worker)
            assert worker.poll() is None  # it lived through all three
        finally:
            _stop(worker)
    finally:
        cam_core.unregister_factory("quits-elsewhere")
    log = open(worker.log_path).read()[-3000:]
    assert [d.run_state for d in docs] == [ExecutionRunState.FAILED] * 3, log
    for d in docs:
        assert "SystemExit: it called sys.exit(3)" in d.result.error, d.result.error
    status = cam_core.run_status(photos, "split")
    assert status.state == "failed" and [s["state"] for s in status.shards] == ["failed", "failed"]
    assert all("SystemExit: it called sys.exit(3)" in s["error"] for s in status.shards)
    assert "shard 0: CamArgumentError: factory 'models:exit_elsewhere' of model 'quits-elsewhere' failed" in status.error


@pytest.fixture
def queued_run(photos, registered, tmp_path, monkeypatch):  # noqa: F811
    """A run of ``tiny-resnet`` queued as two jobs, with its output folder under the output root."""
    photos.persistent = True
    root = str(tmp_path / "root")
    os.makedirs(root)
    monkeypatch.setenv(cam_core.checks.OUTPUT_ROOT_ENV, root)
    ops = cam_core.queue_cams(photos, "tiny-resnet", num_shards=2, run_key="q", layers=["layer4"],
                              output_dir=os.path.join(root, "maps"), num_workers=0)
    return photos, root, ops


def _poison(dataset, run_key, **arguments):
    coll = fo.core.odm.get_db_conn()["cam_core_runs"]
    coll.update_one({"_id": f"{dataset._doc.id}:{run_key}"}, {"$set": {f"arguments.{k}": v for k, v in arguments.items()}})


def _poison_record(dataset, run_key, output_dir):
    """Changes where the run's record (FiftyOne's run document) says its maps go."""
    fo.core.odm.get_db_conn().runs.update_one({"_dataset_id": dataset._doc.id, "key": run_key},
                                              {"$set": {"config.output_dir": output_dir}})


def test_a_worker_checks_a_sharded_runs_stored_arguments(queued_run, plugins_dir, tmp_path):  # noqa: F811
    dataset, root, ops = queued_run
    outside = str(tmp_path / "elsewhere")
    # as anyone who can write to the database could: the queued arguments and the run's record
    _poison(dataset, "q", output_dir=outside)
    _poison_record(dataset, "q", outside)
    worker = _worker(plugins_dir, env={cam_core.checks.OUTPUT_ROOT_ENV: root})
    try:
        docs = _wait(lambda: _ops_done(ops), 300, "the two shards", worker)
    finally:
        _stop(worker)
    assert [d.run_state for d in docs] == [ExecutionRunState.FAILED] * 2, open(worker.log_path).read()[-3000:]
    assert not os.path.exists(outside)  # nothing written there
    status = cam_core.run_status(dataset, "q")
    assert [s["state"] for s in status.shards] == ["failed", "failed"]
    assert all(f"output_dir '{outside}' resolves to" in s["error"] and "outside the allowed root" in s["error"]
               for s in status.shards)
    assert dataset.values("q_gradcam_layer4") == [None] * 4

    # the run's record alone (the shard continues the run, in the folder its record names)
    coll = fo.core.odm.get_db_conn()["cam_core_runs"]
    coll.update_one({"_id": f"{dataset._doc.id}:q"}, {"$unset": {"arguments.output_dir": ""}})
    cam_core.resume_run(dataset, "q")
    with pytest.raises(cam_core.CamArgumentError, match="outside the allowed root"):
        cam_core.checks.run_shard(dataset, "q", 0, output_root=root)
    assert not os.path.exists(outside)

    # the other stored arguments, as the worker's run_shard checks them
    _poison_record(dataset, "q", os.path.join(root, "maps"))
    _poison(dataset, "q", output_dir=os.path.join(root, "maps"))
    for poison, words in (
        ({"model": "torchvision:resnet18"}, "cannot be split into jobs"),
        ({"model": "not-registered"}, "cannot be split into jobs"),
        ({"view": [{"_cls": "subprocess.Popen", "kwargs": [["args", ["touch", outside]]]}]},
         "not one of fiftyone.core.stages"),
        ({"transforms": "anything"}, r"holds arguments no queue stores \(transforms\)"),
    ):
        _poison(dataset, "q", **dict({"model": "tiny-resnet", "view": []}, **poison))
        cam_core.resume_run(dataset, "q")
        with pytest.raises(cam_core.CamArgumentError, match=words):
            cam_core.checks.run_shard(dataset, "q", 0, output_root=root)
        assert cam_core.run_status(dataset, "q").shards[0]["state"] == "failed"
        assert not os.path.exists(outside)
    # unpoisoned, the shard computes
    _poison(dataset, "q", model="tiny-resnet", view=[])
    coll.update_one({"_id": f"{dataset._doc.id}:q"}, {"$unset": {"arguments.transforms": ""}})
    assert cam_core.checks.run_shard(dataset, "q", 0, output_root=root).state == "complete"


def test_split_into_jobs_refuses_a_library_model_in_the_form(photos, plugins_dir):  # noqa: F811
    params = {"model_source": "torchvision", "model": "resnet18", "pretrained": False, "methods": ["gradcam"],
              "run_key": "lib", "num_shards": 2}
    request = {"dataset_name": photos.name, "params": params, "target": "inputs"}
    props = asyncio.run(resolve_type(foo.OperatorRegistry(), uri("compute_cams"), request)).type.properties
    with pytest.raises(cam_core.CamArgumentError) as engine:
        cam_core.checks.check_splittable("torchvision:resnet18")
    assert props["num_shards"].invalid and props["num_shards"].error_message == engine.value.message
    assert "every worker would build it itself, downloading its pretrained weights" in engine.value.message
    assert [n for n, p in props.items() if p.invalid] == ["num_shards"]
    with pytest.raises(ExecutionError, match="Path: num_shards"):
        foo.execute_operator(uri("compute_cams"), ctx={"dataset": photos, "params": params})
    photos.reload()
    assert photos.list_runs() == []  # nothing queued
    # one job with the same model is fine
    props = asyncio.run(resolve_type(foo.OperatorRegistry(), uri("compute_cams"), dict(
        request, params=dict(params, num_shards=1)))).type.properties
    assert not [n for n, p in props.items() if p.invalid]


@pytest.fixture
def slow_model():
    cam_core.register_factory("slow-resnet", "models:slow_resnet18", kwargs={"seconds": 1.0}, overwrite=True)
    yield "slow-resnet"
    cam_core.unregister_factory("slow-resnet")


def test_a_killed_worker_reads_interrupted_is_taken_over_and_the_last_shard_shows_the_run(
        dataset, image_dir, slow_model, plugins_dir):  # noqa: F811
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset.add_samples([fo.Sample(filepath=image_dir[["astronaut", "chelsea", "coffee", "rocket"][i % 4]])
                         for i in range(16)])
    dataset.persistent = True
    ops = cam_core.queue_cams(dataset, slow_model, num_shards=2, run_key="sh", layers=["model.layer4"],
                              batch_size=2, num_workers=0)
    worker = _worker(plugins_dir, env={"OMP_NUM_THREADS": "1"})
    try:
        def mid_shard():
            return next((s for s in cam_core.run_status(dataset, "sh").shards
                         if s["state"] == "running" and 2 <= s["num_samples"] < 8), None)
        victim = _wait(mid_shard, 300, "a shard in the middle of its work", worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    finally:
        _stop(worker)
    other = 1 - victim["shard"]

    # one shard interrupted, the other waiting: the run says interrupted, and which shard to resume
    status = cam_core.run_status(dataset, "sh")
    assert [s["state"] for s in status.shards][victim["shard"]] == "interrupted"
    assert status.shards[other]["state"] == "queued"
    assert status.state == "interrupted"
    assert status.error.startswith(f"shard {victim['shard']} of 2 interrupted: its worker is gone; resume the run")
    runs = foo.get_operator(uri("list_cam_runs"))(dataset)
    assert runs[0]["state"] == "interrupted" and runs[0]["error"] == status.error
    table = foo.execute_operator(uri("list_cam_runs"), ctx={"dataset": dataset}).result["table"]
    assert table[0]["state"] == f"interrupted (shard {victim['shard']} interrupted; 1 queued)"
    dos = DelegatedOperationService()
    assert dos.get(ObjectId(victim["op_id"])).run_state == ExecutionRunState.RUNNING  # as FiftyOne last heard

    # resumed: the dead worker's operation is failed, saying its shard was taken over
    requeued = cam_core.resume_run(dataset, "sh")
    assert len(requeued) == 1
    killed = dos.get(ObjectId(victim["op_id"]))
    assert killed.run_state == ExecutionRunState.FAILED
    assert killed.result.error.startswith(f"shard {victim['shard']} of CAM run 'sh' was taken over: its worker "
                                          f"(process {victim['holder'].rsplit(':', 1)[1]} on")
    assert requeued[0] in killed.result.error

    # a new worker completes both shards; the one that completes the last gives the run its sidebar group
    dataset.reload()
    assert "cam: sh" not in [g.name for g in dataset.app_config.sidebar_groups or []]
    worker = _worker(plugins_dir, env={"OMP_NUM_THREADS": "1"})
    try:
        _wait(lambda: cam_core.run_status(dataset, "sh").state == "complete", 300, "the run", worker)
    finally:
        _stop(worker)
    dataset.reload()
    groups = {g.name: g.paths for g in dataset.app_config.sidebar_groups}
    assert groups["cam: sh"] == ["sh_gradcam_model_layer4", "sh_gradcam_model_layer4.empty"]
    assert dataset.app_config.color_scheme.color_by == "value"
    assert dataset.load_run_results("sh", cache=False).num_samples == 16
