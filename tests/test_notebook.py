"""The tutorial notebook (notebooks/tutorial.ipynb) runs, at the reduced size
the demo's test uses, and is stored without outputs.

It runs in a real Jupyter kernel (nbclient, ipykernel) started from this
session's environment: the kernel sees the session's private mongod and
FiftyOne folders (conftest), and trains the demo's models into a temporary
cache. ``FIFTYONE_CAM_TUTORIAL_SMALL=1`` is the notebook's own switch to the
reduced size; the App is not opened (the notebook's ``OPEN_APP`` stays False).
"""
import os

import nbformat
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "notebooks", "tutorial.ipynb")
DATASET = "cam-tutorial"


def test_the_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
    # the App is opened only when a reader asks for it
    assert any("OPEN_APP = False" in c.source for c in code)


@pytest.mark.timeout(900)
def test_the_notebook_tells_the_demo_story_at_a_reduced_size(tmp_path, monkeypatch):
    import fiftyone as fo
    from nbclient import NotebookClient

    from demo.dataset import delete_demo_dataset

    monkeypatch.setenv("FIFTYONE_CAM_TUTORIAL_SMALL", "1")
    monkeypatch.setenv("FIFTYONE_CAM_CACHE", str(tmp_path / "cache"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}})
    try:
        client.execute()  # raises CellExecutionError naming the cell and its traceback

        text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                         for out in cell.outputs if out.get("output_type") == "stream")
        images = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
                  if "image/png" in out.get("data", {})]
        assert len(images) >= 3, "the sample and the two summary pictures are shown"
        assert "of the 10 lowest" in text and "driven by the mark" in text

        # what the story leaves in the dataset, as the demo's test checks it
        ds = fo.load_dataset(DATASET)
        assert sorted(cam_core_runs(ds)) == ["cnn", "det", "vit"]
        assert {"shortcut-suspects", "boxes-found-by-context"} <= set(ds.list_saved_views())
        test = ds.match_tags("test")
        suspects = ds.load_saved_view("shortcut-suspects")
        values = suspects.values("cnn_gradcam_features_3.mass_inside")
        assert values == sorted(values) and len(values) == test.count("cnn_gradcam_features_3.mass_inside")
        # the shortcut is found: the lowest ten carry the mark more often than chance
        chance = len(test.match({"has_mark": True})) / len(test)
        assert sum(suspects.limit(10).values("has_mark")) / 10 > chance
        assert ds.count("det_detections.detections") > 0
    finally:
        delete_demo_dataset(DATASET)
    assert not fo.dataset_exists(DATASET)


def cam_core_runs(ds):
    import cam_core

    return cam_core.list_cam_runs(ds)
