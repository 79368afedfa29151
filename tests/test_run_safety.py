"""Runs that survive crashes and each other: killed runs resumed, two
processes on one dataset, a running run's key refused with its holder,
concurrent edits. Each process here is a real process (tests/cam_child.py)
against the session's mongod. Full and read-only disks are in
test_run_safety_disks.py, the other edge cases in test_run_safety_edges.py."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import cam_core
import models
from run_checks import FIELDS, KW, check_whole, fields_of, run_files, shared, small  # noqa: F401 (a fixture)


HERE = os.path.dirname(os.path.abspath(__file__))


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
