"""The plugin as the operator tests load it: a plugins folder holding this
checkout, ``tiny-resnet`` registered through the operator, four photos, the
compute_cams operator called from Python, a real delegated worker, and
delete_cam_run executed as the App executes it.

The registered factory is ``test_operators:tiny_resnet``: a factory must be
defined in an allowed module (conftest), so the model stays in that test module.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext, Executor


TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
PLUGIN = "@fiftyone-cam/cam"
PHOTOS = {"astronaut": "astronaut", "chelsea": "cat", "coffee": "coffee", "rocket": "rocket"}


def uri(name):
    return f"{PLUGIN}/{name}"


def plugin_env(plugins_dir):
    """The environment of a process that must see this session's database,
    the plugin and the factory module."""
    env = dict(os.environ)
    env["FIFTYONE_PLUGINS_DIR"] = plugins_dir
    env["PYTHONPATH"] = os.pathsep.join([TESTS] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


@pytest.fixture(scope="module")
def plugins_dir():
    """A plugins directory holding this repository (as a symlink)."""
    folder = tempfile.mkdtemp(prefix="cam-plugins-")
    os.symlink(REPO, os.path.join(folder, "fiftyone-cam"))
    old_env, old_config = os.environ.get("FIFTYONE_PLUGINS_DIR"), fo.config.plugins_dir
    os.environ["FIFTYONE_PLUGINS_DIR"] = folder
    fo.config.plugins_dir = folder
    yield folder
    fo.config.plugins_dir = old_config
    if old_env is None:
        os.environ.pop("FIFTYONE_PLUGINS_DIR", None)
    else:
        os.environ["FIFTYONE_PLUGINS_DIR"] = old_env


@pytest.fixture(scope="module")
def registered(plugins_dir):
    """``tiny-resnet`` registered through the operator, as a factory in the database."""
    out = foo.get_operator(uri("register_cam_model"))("tiny-resnet", "test_operators:tiny_resnet", overwrite=True)
    yield out
    foo.get_operator(uri("unregister_cam_model"))("tiny-resnet")


@pytest.fixture
def photos(dataset, image_dir):
    """Four photos with a Classification ``ground_truth`` and a Detections ``objects`` field."""
    samples = []
    for name, label in PHOTOS.items():
        s = fo.Sample(filepath=image_dir[name], ground_truth=fo.Classification(label=label))
        s["objects"] = fo.Detections(detections=[fo.Detection(label=label, bounding_box=[0.2, 0.2, 0.5, 0.5])])
        samples.append(s)
    dataset.add_samples(samples)
    return dataset


def compute(collection, **kwargs):
    kwargs.setdefault("layers", ["layer3", "layer4"])
    return foo.get_operator(uri("compute_cams"))(collection, "tiny-resnet", **kwargs)


def run_worker(plugins_dir, op_id, timeout=240):
    """Runs a real ``fiftyone delegated launch`` worker until the operation
    ``op_id`` has completed or failed (at most ``timeout`` seconds), then stops it.

    Returns:
        the path of the worker's log
    """
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    dos = DelegatedOperationService()
    fiftyone_cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    log = tempfile.NamedTemporaryFile(prefix="cam-worker-", suffix=".log", delete=False)
    worker = subprocess.Popen([fiftyone_cli, "delegated", "launch"], env=plugin_env(plugins_dir),
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if dos.get(op_id).run_state in (ExecutionRunState.COMPLETED, ExecutionRunState.FAILED):
                break
            assert worker.poll() is None, open(log.name).read()
            time.sleep(1)
    finally:
        worker.send_signal(signal.SIGINT)  # the worker's own way out (KeyboardInterrupt)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return log.name


def _delete_from_the_app(dataset, run_key, params=None, **app_state):
    """Runs delete_cam_run as the App does, with the App's view / filters /
    saved view name (and the form's ``params`` besides the run key), and then
    each execution of itself it triggers, as the App's queue does; returns
    the App operations asked for: ``[(name, params)]``."""
    op = foo.OperatorRegistry().get_operator(uri("delete_cam_run"))
    # no App to wait for (the waiting is operators/follow.py's)
    op.execute.__globals__["follow_in_app"].__globals__["WAIT_SECONDS"] = 0.0
    request = dict(app_state, dataset_name=dataset.name)
    todo, ops = [dict(params or {}, run_key=run_key)], []
    while todo:
        ctx = ExecutionContext(request_params=dict(request, params=todo.pop(0)), executor=Executor())
        assert op.resolve_input(ctx) is not None  # what the App checks first
        op.execute(ctx)
        for r in ctx.executor._requests:
            if r.operator_uri == op.uri:
                todo.append(r.params)
            else:
                ops.append((r.operator_uri, r.params))
    return ops
