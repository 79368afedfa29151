"""What the run-safety tests share: a persistent dataset of 16 photos (other
processes load it by name), the run's keyword arguments and fields, and the
check that a run is whole (every map stored, no file left unreferenced)."""
import os

import numpy as np
import pytest
import torchvision.transforms as T
from PIL import Image

import cam_core


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
