"""From a batch's maps to what is stored, overlapped with the next batch.

The main thread places each map in its image's frame and converts it to
8 bits on the model's device (:func:`place_batch`); only uint8 maps cross to
the CPU. A :class:`BatchWriter` thread then scores them, encodes the PNGs
(a small thread pool), and writes each sample's fields with one bulk write
per batch: one update per sample holding all of that sample's fields,
addressed to those fields only (never through FiftyOne's cached schema, so
concurrent runs and concurrent edits of other fields cannot break it). A
sample therefore holds all of a run's maps or none, also if the process dies.
"""
import datetime
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations

import fiftyone as fo
import numpy as np
import torch
from bson import ObjectId
from pymongo import UpdateOne

from ..engine.targets import class_name
from ..labels import mask_targets_of
from ..media.mapfiles import make_heatmap, remove_map_files
from ..scoring import agreement, region_mask, region_scores, shape_scores
from ..scoring.names import MAP_SCALE
from . import schema


@dataclass
class PlacedBatch:
    """One batch, ready to be stored.

    Attributes:
        sample_ids: the samples' ids
        maps: per sample ``{field: (H, W) uint8 array}`` in the image's frame
        scales: per sample the map's :meth:`cam_core.media.geometry.Frame.map_scale`
        targets: per sample ``(index, score, confidence)``
        peaks: per sample ``{field: raw peak}``
        road: per sample ``{field: ROAD score}`` (empty without faithfulness)
        objects: per sample its ``gt_field`` label, or None
        skipped: the batch's skipped samples (``{"id", "filepath", "kind", "reason"}``)
    """

    sample_ids: list
    maps: list
    scales: list
    targets: list
    peaks: list
    road: list
    objects: list
    skipped: list


def to_uint8(cam):
    """A [0, 1] float map (tensor) as uint8 in [0, 255], rounded as numpy rounds."""
    return torch.clamp(torch.round(cam * 255.0), 0, 255).to(torch.uint8)


def place_batch(plan, group, result, road, objects, sample_ids):
    """Places and converts every map of one explained group on its device.

    Args:
        plan: the run's :class:`cam_core.compute.plan.Plan`
        group: the group's :class:`cam_core.media.loader.Item` (their frames)
        result: the group's :class:`cam_core.engine.BatchResult`
        road: ``{(method, layer): [score per row]}`` or ``{}``
        objects: per sample its ``gt_field`` label, or None
        sample_ids: per row the sample id

    Returns:
        a :class:`PlacedBatch` (without skips)
    """
    maps, peaks, roads = [], [], []
    for b, it in enumerate(group):
        maps.append({f: to_uint8(it.frame.place(torch.as_tensor(result.maps[key][b]))).cpu().numpy()
                     for f, key in ((f, tuple(k)) for f, k in plan.fields.items())})
        peaks.append({f: float(result.peaks[tuple(k)][b]) for f, k in plan.fields.items()})
        roads.append({f: road[tuple(k)][b] for f, k in plan.fields.items() if tuple(k) in road})
    targets = list(zip(result.indices, result.scores, result.confidences))
    return PlacedBatch(sample_ids, maps, [it.frame.map_scale() for it in group], targets, peaks, roads,
                       list(objects), [])


def sample_labels(plan, placed, b, mask_targets=None, pool=None):
    """``{field: label}`` of row ``b`` of a :class:`PlacedBatch`: its Heatmaps
    (PNG files written) and its agreement values."""
    c, score, confidence = placed.targets[b]
    base = {"target_index": int(c), "target_label": class_name(plan.classes, c), "target_score": score,
            "target_confidence": confidence}
    if placed.scales[b] < 1.0:
        base[MAP_SCALE] = placed.scales[b]
    sid, region = placed.sample_ids[b], False
    attrs, cams = {}, {}
    for f in plan.fields:
        # scores describe the stored 8-bit map, so scoring it later gives the same values
        cam = cams[f] = placed.maps[b][f] / 255.0
        a = dict(base, **shape_scores(cam, raw_peak=placed.peaks[b][f]))
        if plan.gt_field:
            if region is False:  # one region per sample, shared by its maps
                region = region_mask(placed.objects[b], cam.shape, base["target_label"], c, plan.all_objects,
                                     mask_targets)
            a.update(region_scores(cam, region, plan.iou_threshold))
        if f in placed.road[b]:
            a["road"] = placed.road[b][f]
        attrs[f] = a
    paths = {f: os.path.join(plan.output_dir, f, sid + ".png") for f in plan.fields}
    build = lambda f: make_heatmap(placed.maps[b][f], plan.storage, paths[f], **attrs[f])  # noqa: E731
    labels = dict(zip(plan.fields, (pool.map if pool else map)(build, plan.fields)))
    if plan.agreement_field:
        labels[plan.agreement_field] = _agreement(cams, plan.agreement_groups)
    return labels


def _agreement(cams, groups):
    values = {}
    for name, fields in groups.items():
        corr = [agreement([cams[a], cams[b]]) for a, b in combinations(fields, 2)]
        corr = [c for c in corr if c is not None]
        values[name] = float(np.mean(corr)) if corr else None
    return fo.DynamicEmbeddedDocument(**values)


def bulk_write(dataset, labels):
    """One bulk write: per sample one update setting its fields (``{sample
    id: {field: label}}``), so no sample holds half a run."""
    if not labels:
        return
    now = datetime.datetime.utcnow()
    ops = [UpdateOne({"_id": ObjectId(sid)}, {"$set": {**{f: l.to_mongo() for f, l in fields.items()},
                                                       "last_modified_at": now}})
           for sid, fields in labels.items()]
    dataset._sample_collection.bulk_write(ops, ordered=False)


@contextmanager
def _numpy_blas_single_thread():
    """numpy's own BLAS on one thread while the writer scores: small dot
    products are 1000x slower when its threads fight torch's for the cores.
    Only numpy's library is limited (torch's stay as they are)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # an optional speed-up
        yield
        return
    libs = [lib for lib in ThreadpoolController().lib_controllers
            if lib.user_api == "blas" and "numpy" in lib.filepath]
    before = [lib.num_threads for lib in libs]
    for lib in libs:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libs, before):
            lib.set_num_threads(n)


class BatchWriter:
    """Stores :class:`PlacedBatch` es on a thread while the next batch is
    computed. The queue holds at most ``depth`` batches, so memory stays flat.
    The first error stops the writer; :meth:`submit` and :meth:`close`
    raise it in the caller's thread, with its cause.

    Args:
        plan: the run's :class:`cam_core.compute.plan.Plan`
        claim: the run's :class:`cam_core.runs.state.Claim` (counts per batch)
        started: when this session of the run started (its seconds count from there)
    """

    def __init__(self, plan, claim, started, depth=2):
        self.plan, self.claim, self._last = plan, claim, started
        self.mask_targets = mask_targets_of(plan.dataset, plan.gt_field) if plan.gt_field else None
        self.written = 0
        self.error = None
        self._queue = queue.Queue(maxsize=depth)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cam_core-png")
        self._thread = threading.Thread(target=self._work, name="cam_core-writer", daemon=True)
        self._thread.start()

    def submit(self, placed):
        self._raise()
        self._queue.put(placed)

    def close(self, raise_error=True):
        """Waits for every submitted batch to be stored; raises the writer's error."""
        self._queue.put(None)
        self._thread.join()
        self._pool.shutdown()
        if raise_error:
            self._raise()

    def _raise(self):
        if self.error is not None:
            raise self.error

    def _work(self):
        with _numpy_blas_single_thread():
            while True:
                placed = self._queue.get()
                if placed is None:
                    return
                if self.error is None:
                    try:
                        self._store(placed)
                    except BaseException as e:  # stops the run; the caller raises it
                        self.error = e

    def _store(self, placed):
        plan, labels = self.plan, {}
        try:
            for b, sid in enumerate(placed.sample_ids):
                labels[sid] = sample_labels(plan, placed, b, self.mask_targets, self._pool)
            self.claim.check_held()
            bulk_write(plan.dataset, labels)
        except BaseException:
            # this batch's files are referenced by nothing: removed, nothing half-written
            remove_map_files([os.path.join(plan.output_dir, f, sid + ".png")
                              for sid in placed.sample_ids for f in plan.fields])
            raise
        schema.keep_declared(plan)
        now = time.time()
        self.claim.add(len(labels), placed.skipped, now - self._last)
        self._last = now
        self.written += len(labels)
