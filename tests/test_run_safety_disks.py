"""Runs against their output folder: an unwritable folder refused before
anything, a real full disk (a 128 KiB tmpfs) failing the run with its cause
and resumed once space is freed, a read-only one refused."""
import os
import subprocess

import pytest

import cam_core
import models
from run_checks import KW, check_whole, fields_of, run_files, shared, small  # noqa: F401 (a fixture)


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
