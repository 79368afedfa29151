"""A run's folders swapped for symbolic links to a folder outside: in the
middle of a run (a real child process, tests/cam_child.py, between two of
its batches), and before a run starts. No map file lands outside; the run
fails, saying which folder was replaced."""
import os

import pytest

import cam_core
import models
from run_checks import KW, fields_of, shared, small  # noqa: F401 (a fixture)
from test_run_safety import child, finish, wait_for


def files_under(folder):
    return [os.path.join(r, f) for r, _, files in os.walk(folder) for f in files]


@pytest.mark.parametrize("swapped", ["field folder", "output folder"])
def test_a_folder_swapped_for_a_link_mid_run_sends_no_file_outside(shared, tmp_path, swapped):
    out, outside = tmp_path / "root" / "maps", tmp_path / "outside"
    outside.mkdir()
    for f in fields_of("sw"):  # a path-following writer would find its folders there
        (outside / f).mkdir()
    proc = child(dict(dataset=shared.name, run_key="sw", kwargs=dict(KW, output_dir=str(out)), sleep=2.0), wait=False)
    try:
        wait_for(lambda: "sw" in cam_core.runs.state.stored_run_keys(shared)
                 and cam_core.run_status(shared, "sw").num_samples >= 4)
        target = out / fields_of("sw")[0] if swapped == "field folder" else out
        os.rename(target, f"{target}.moved")
        os.symlink(outside, target)
    finally:
        res = finish(proc)
    assert res.get("returncode") == 1 and "was replaced while the run wrote into it" in res["stderr"], res
    assert files_under(outside) == []
    status = cam_core.run_status(shared, "sw")
    assert status.state == "failed" and "was replaced" in status.error
    assert 4 <= status.num_samples < 16  # the batches stored before the swap, none after


def test_a_field_folder_that_is_a_link_is_refused(shared, tmp_path):
    out, outside = tmp_path / "maps", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    os.symlink(outside, out / fields_of("ln")[1])
    with pytest.raises(OSError, match="cannot be used.*not symbolic links"):
        cam_core.compute_cams(shared, models.resnet18(), run_key="ln", transforms=small(), batch_size=4,
                              output_dir=str(out), **KW)
    assert files_under(outside) == []
    assert cam_core.run_status(shared, "ln").state == "failed"
