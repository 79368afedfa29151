"""Two databases under one default dataset folder (every FiftyOne database's
default is ``~/fiftyone``): a second private mongod, and a second process
pointed at it that computes runs into the same folder, one on a dataset named
like one of ours. Removing the orphaned maps of this database removes ours
and nothing of the other's, nor a folder of maps from before markers."""
import json
import os
import subprocess
import sys
import uuid

import fiftyone as fo

import cam_core
import models
import mongo
from run_checks import PHOTOS, small

HERE = os.path.dirname(os.path.abspath(__file__))

OTHER = r"""
import json, sys
import fiftyone as fo
import torchvision.transforms as T
import cam_core, models

spec = json.loads(sys.argv[1])
paths = []
for name in spec["names"]:
    ds = fo.Dataset(name, persistent=True)
    ds.add_samples([fo.Sample(filepath=p) for p in spec["images"]])
    cam_core.compute_cams(ds, models.resnet18(), run_key="cam", methods="gradcam", layers="layer4",
                          transforms=T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()]))
    paths += ds.values("cam_gradcam_layer4.map_path")
print(json.dumps(paths))
"""


def in_other_database(uri, names, images):
    """Runs ``OTHER`` in a process whose FiftyOne database is ``uri``; returns its map paths."""
    env = dict(os.environ, FIFTYONE_DATABASE_URI=uri)
    env["PYTHONPATH"] = os.pathsep.join([HERE] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    done = subprocess.run([sys.executable, "-c", OTHER, json.dumps({"names": names, "images": images})], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_orphans_of_one_database_leave_another_databases_maps(image_dir):
    proc, uri, data_dir = mongo.start(set_env=False)
    try:
        images = [image_dir[n] for n in PHOTOS[:2]]
        tag = uuid.uuid4().hex[:8]
        twin = f"twin-{tag}"  # a name both databases use
        theirs = in_other_database(uri, [twin, f"theirs-{tag}"], images)
        assert len(theirs) == 4 and all(os.path.isfile(p) for p in theirs)

        # a folder of maps written before runs left markers: whose they are cannot be told
        legacy = os.path.join(fo.config.default_dataset_dir, "cam_maps", f"legacy-{tag}", "cam")
        os.makedirs(os.path.join(legacy, "cam_gradcam_layer4"))
        old_map = os.path.join(legacy, "cam_gradcam_layer4", "0123456789abcdef01234567.png")
        open(old_map, "wb").close()

        ours = fo.Dataset(twin)
        ours.add_samples([fo.Sample(filepath=p) for p in images])
        cam_core.compute_cams(ours, models.resnet18(), run_key="cam", transforms=small(), methods="gradcam",
                              layers="layer4")
        mine = ours.values("cam_gradcam_layer4.map_path")
        assert len(mine) == 2 and not set(mine) & set(theirs)
        ours.delete()

        removable = cam_core.remove_orphaned_maps(dry_run=True)
        assert set(mine) <= set(removable) and not set(theirs) & set(removable) and old_map not in removable
        removed = cam_core.remove_orphaned_maps()
        assert all(os.path.isfile(p) for p in theirs) and os.path.isfile(old_map)
        assert set(mine) <= set(removed) and not set(theirs) & set(removed) and old_map not in removed
        assert not any(os.path.exists(p) for p in mine)
        assert not os.path.exists(os.path.dirname(os.path.dirname(mine[0])))  # the folder our run made
        # what no marker of this database proves its own is listed, never removed
        listed = cam_core.checks.orphaned_maps()
        assert legacy in listed.unproven and not set(theirs) & set(listed.removable) and not listed.kept
        assert not set(theirs) & set(cam_core.remove_orphaned_maps())
        assert all(os.path.isfile(p) for p in theirs) and os.path.isfile(old_map)
    finally:
        mongo.stop(proc, data_dir)
