"""The demo's persistent FiftyOne dataset: scenes written as PNG files, with their ground truth.

Fields of every sample (tagged ``train`` or ``test``):

- ``ground_truth``: ``fo.Classification``, the digit's class
- ``gt_boxes``: ``fo.Detections``, the digit's tight box
- ``gt_mask``: ``fo.Segmentation`` (``mask_path``), the digit's pixels
  (value = class index + 1; the dataset's ``mask_targets`` name them)
- ``mark``: ``fo.Detections`` with the mark's box, on marked samples only
- ``has_mark``: bool
"""
import os
import shutil

from PIL import Image

_MARKER = ".fiftyone-cam-demo"  # only folders carrying it are ever deleted


def dataset_dir(name):
    """Where the demo's files go: ``<fo.config.default_dataset_dir>/<name>``."""
    import fiftyone as fo

    return os.path.join(fo.config.default_dataset_dir, name)


def delete_demo_dataset(name):
    """Deletes the dataset ``name`` with its CAM runs (their map files) and
    the demo's folder, if it was made by the demo."""
    import fiftyone as fo

    import cam_core

    if fo.dataset_exists(name):
        ds = fo.load_dataset(name)
        for key in cam_core.list_cam_runs(ds):
            ds.delete_run(key)  # removes its Heatmap fields and PNG files
        ds.delete()
    folder = dataset_dir(name)
    if os.path.isfile(os.path.join(folder, _MARKER)):
        shutil.rmtree(folder)
    elif os.path.exists(folder):
        raise RuntimeError(
            f"{folder} exists and was not made by this demo; pass another dataset name (--name) "
            f"or move that folder away"
        )


def build_dataset(name, scenes, classes):
    """Writes the scenes as files and creates the persistent dataset ``name``
    (an existing one of that name is deleted first, with its files).

    Args:
        name: the dataset name
        scenes: :class:`demo.data.Scene` list (train and test)
        classes: the class names; mask value ``i + 1`` is ``classes[i]``

    Returns:
        the ``fo.Dataset``, in the order of ``scenes``
    """
    import fiftyone as fo

    delete_demo_dataset(name)
    folder = dataset_dir(name)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "masks"), exist_ok=True)
    open(os.path.join(folder, _MARKER), "w").close()

    samples = []
    counters = {}
    for scene in scenes:
        i = counters[scene.split] = counters.get(scene.split, -1) + 1
        stem = f"{scene.split}_{i:05d}"
        image_path = os.path.join(folder, "images", stem + ".png")
        mask_path = os.path.join(folder, "masks", stem + ".png")
        Image.fromarray(scene.image).save(image_path, compress_level=1)
        Image.fromarray(scene.mask).save(mask_path, compress_level=1)
        sample = fo.Sample(
            filepath=image_path,
            tags=[scene.split],
            ground_truth=fo.Classification(label=scene.label),
            gt_boxes=fo.Detections(detections=[fo.Detection(label=scene.label, bounding_box=scene.box)]),
            gt_mask=fo.Segmentation(mask_path=mask_path),
            has_mark=scene.mark_box is not None,
        )
        if scene.mark_box is not None:
            sample["mark"] = fo.Detections(detections=[fo.Detection(label="mark", bounding_box=scene.mark_box)])
        samples.append(sample)

    ds = fo.Dataset(name, persistent=True)
    ds.add_samples(samples, progress=False)
    ds.mask_targets = {"gt_mask": {i + 1: c for i, c in enumerate(classes)}}
    ds.default_mask_targets = {i + 1: c for i, c in enumerate(classes)}
    ds.classes = {"ground_truth": list(classes)}
    ds.info = {"description": "fiftyone-cam demo: digits pasted on scikit-image photos, a red mark planted as a shortcut"}
    ds.save()
    return ds



def set_scene_values(view, scenes, values):
    """Writes ``{field: [value per scene]}`` on the samples of ``view``, the
    i-th sample getting the i-th scene's value (:func:`build_dataset` adds
    the samples in the scenes' order).

    Raises:
        RuntimeError: when the view does not hold one sample per scene
    """
    paths = view.values("filepath")
    if len(paths) != len(scenes):
        raise RuntimeError(f"the dataset holds {len(paths)} samples here, {len(scenes)} scenes were generated")
    for field, vals in values.items():
        view.set_values(field, dict(zip(paths, vals)), key_field="filepath")
