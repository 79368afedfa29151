"""A storm of schema changes: two processes of another tool add their own
fields with FiftyOne's ``add_sample_field`` (and set their values on every
sample) round after round, while two processes declare the fields of CAM runs
with new keys (``schema.declare``, what each run does when it opens). A
declaration only adds: no field the other tool saved is lost, and afterwards
every sample loads. FiftyOne's ``add_sample_field`` writes the whole field
list, so the other tool can drop a run's fields in turn; a run puts its own
back after every batch (``keep_declared``), done here once the storm is over."""
import dataclasses
import json
import os
import subprocess
import sys

import fiftyone as fo
import torchvision.transforms as T

import cam_core
import models
from cam_core.compute import schema
from cam_core.compute.plan import run_fields

HERE = os.path.dirname(os.path.abspath(__file__))
ROUNDS = 25


def test_schema_storm_loses_no_field(tmp_path):
    ds = fo.Dataset(persistent=True)
    ds.add_samples([fo.Sample(filepath=f"/images/{i}.png") for i in range(8)])
    try:
        go = str(tmp_path / "go")
        specs = [dict(role="storm", name=f"tool{i}", lock=str(tmp_path / "lock")) for i in range(2)]
        specs += [dict(role="declare", name=f"run{i}") for i in range(2)]
        procs = []
        for i, spec in enumerate(specs):
            spec.update(dataset=ds.name, rounds=ROUNDS, ready=str(tmp_path / f"ready{i}"), go=go)
            procs.append(subprocess.Popen([sys.executable, os.path.join(HERE, "schema_child.py"), json.dumps(spec)],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        _wait_ready([s["ready"] for s in specs], procs)
        open(go, "w").close()  # all at once
        outs = [p.communicate(timeout=900) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
        made = [json.loads(o[0].strip().splitlines()[-1])["fields"] for o in outs]
        theirs, ours = made[0] + made[1], made[2] + made[3]
        assert len(theirs) == 2 * ROUNDS and len(ours) == 2 * ROUNDS

        ds.reload()
        lost = [f for f in theirs if f not in ds.get_field_schema()]
        assert lost == [], f"the runs' declarations dropped {len(lost)} of the other tool's fields: {lost}"

        plan = cam_core.checks.check_compute_args(ds, models.resnet18(), run_key="unused", storage="inline",
                                           methods="gradcam", layers="layer4",
                                           transforms=T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()]))
        for key in {f.rsplit("_gradcam", 1)[0] for f in ours}:  # each run after its next batch
            schema.keep_declared(dataclasses.replace(plan, run_key=key, fields=run_fields(key, ["gradcam"], ["layer4"])))
        ds.reload()
        fields = ds.get_field_schema()
        assert all(f in fields for f in theirs + ours)
        samples = list(ds)  # every sample loads, every value is there
        assert all(s[f] == f"value {f.rsplit('_', 1)[1]}" for s in samples for f in theirs)
        assert all(s[f].spread == 0.5 for s in samples for f in ours)
        assert f"{ours[0]}.spread" in ds.get_field_schema(flat=True)  # the score attributes too
    finally:
        ds.delete()


def _wait_ready(files, procs, timeout=600):
    import time

    deadline = time.time() + timeout
    while not all(os.path.exists(f) for f in files):
        dead = [p for p in procs if p.poll() is not None]
        assert not dead, dead[0].communicate()[1][-3000:]
        assert time.time() < deadline, "the storm's processes did not start"
        time.sleep(0.2)
