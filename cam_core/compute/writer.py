"""From a batch's maps to what is stored, overlapped with the next batch.

The main thread places each map in its image's frame, converts it to 8 bits
and computes its shape scores and the agreement on the model's device
(:func:`place_batch`); only uint8 maps and the scores cross to the CPU. A
:class:`BatchWriter` thread then scores them against ground truth, encodes
the PNGs (a small thread pool), and writes each sample's fields with one bulk write
per batch: one update per sample holding all of that sample's fields,
addressed to those fields only (never through FiftyOne's cached schema, so
concurrent runs and concurrent edits of other fields cannot break it). A
sample therefore holds all of a run's maps or none, also if the process dies.
"""
import datetime
import math
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
from ..media.mapdirs import MapFolders
from ..media.mapfiles import STORED_RANGE, to_float, write_png
from ..scoring import agreement_batch, region_mask, region_scores, shape_scores_batch
from ..scoring.names import EMPTY, MAP_SCALE, NUM_OBJECTS
from . import schema
from .detect import detections_label


@dataclass
class PlacedBatch:
    """One batch, ready to be stored.

    Attributes:
        sample_ids: the samples' ids
        maps: per sample ``{field: (H, W) uint8 array}`` in the image's frame
        scales: per sample the map's :meth:`cam_core.media.geometry.Frame.map_scale`
        targets: per sample ``(index, score, confidence)``
        shape: per sample ``{field: shape scores}`` (computed on the device)
        agreement: per sample ``{group: mean correlation or None}``
        road: per sample ``{field: ROAD score}`` (empty without faithfulness)
        objects: per sample its ``gt_field`` label, or None
        skipped: the batch's skipped samples (``{"id", "filepath", "kind", "reason"}``)
        detections: a detector's batch: per sample its explained objects
            (:func:`cam_core.compute.detect.add_objects`), else None
    """

    sample_ids: list
    maps: list
    scales: list
    targets: list
    shape: list
    agreement: list
    road: list
    objects: list
    skipped: list
    detections: list = None


def to_stored(cam, seen):
    """A [0, 1] float map (tensor) as stored: ``1 + round(254 * v)`` where
    the model saw the image (``seen``), 0 elsewhere (see
    :data:`cam_core.media.mapfiles.STORED_RANGE`)."""
    return torch.where(seen, _levels(cam), 0)


def _levels(cam):
    """``1 + round(254 * v)`` of a [0, 1] float map (tensor), as uint8 (in
    place on one temporary: these maps are the batch's largest arrays)."""
    lo, hi = STORED_RANGE
    values = cam * float(hi - lo)
    return values.round_().clamp_(0, hi - lo).add_(lo).to(torch.uint8)


def place_batch(plan, group, result, road, objects, sample_ids):
    """Places, converts and scores every map of one explained group on its device.

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
    maps, shape, agree, roads = [], [], [], []
    keys = {f: tuple(k) for f, k in plan.fields.items()}
    whole = None
    if all(isinstance(result.maps[k], torch.Tensor) for k in keys.values()) and \
            any(it.frame.map_scale() == 1.0 for it in group):
        # the whole batch converted at once (its maps are (B, H, W) tensors; a detector's of mixed sizes are lists)
        whole = torch.stack([_levels(result.maps[k]) for k in keys.values()], dim=1)
    for b, it in enumerate(group):
        # one sample's maps share its canvas: placed, converted and scored together on the device
        if it.frame.map_scale() == 1.0:
            # unshrunk, converting then pasting equals pasting then converting (0 outside the input either
            # way), and pasting uint8 maps moves a quarter of the bytes
            stack = it.frame.place(whole[b] if whole is not None else _levels(_sample_maps(result, keys, b)))
        else:  # shrunk to the canvas's limit: the float maps are resampled, then converted
            cams = _sample_maps(result, keys, b)
            seen = it.frame.place(torch.ones_like(cams[0])) > 0  # what the model saw: drawn, even where 0
            stack = to_stored(it.frame.place(cams), seen)
        peaks = [float(result.peaks[k][b]) for k in keys.values()]
        lo, hi = STORED_RANGE
        shape.append(dict(zip(keys, shape_scores_batch(stack, peaks, lo, hi))))
        agree.append(_agreement(agreement_batch(stack, lo), list(keys), plan.agreement_groups)
                     if plan.agreement_field else None)
        maps.append(dict(zip(keys, stack.cpu().numpy())))
        roads.append({f: road[k][b] for f, k in keys.items() if k in road})
    targets = list(zip(result.indices, result.scores, result.confidences))
    return PlacedBatch(sample_ids, maps, [it.frame.map_scale() for it in group], targets, shape, agree, roads,
                       list(objects), [])


def _sample_maps(result, keys, b):
    """Row ``b``'s maps of ``keys`` as one (F, H, W) float tensor."""
    return torch.stack([torch.as_tensor(result.maps[k][b]) for k in keys.values()])


def sample_labels(plan, placed, b, mask_targets=None, pool=None, pending=None, folders=None):
    """``{field: label}`` of row ``b`` of a :class:`PlacedBatch`: its Heatmaps
    (PNG files written through ``folders``, the run's
    :class:`cam_core.media.mapdirs.MapFolders`, on ``pool`` when given; their
    futures appended to ``pending`` when given, else waited for) and its agreement values."""
    c, score, confidence = placed.targets[b]
    if plan.detector:  # its map explains all its objects: each one's own target is on the detections field
        base = {NUM_OBJECTS: len(placed.detections[b])}
    else:
        base = {"target_index": int(c), "target_label": class_name(plan.classes, c), "target_score": score,
                "target_confidence": confidence}
    if placed.scales[b] < 1.0:
        base[MAP_SCALE] = placed.scales[b]
    sid, region = placed.sample_ids[b], False
    paths = {f: os.path.join(plan.output_dir, f, sid + ".png") for f in plan.fields}
    png = plan.storage == "png"
    # the PNGs are encoded and written on the pool while this thread scores
    writes = [(pool.submit if pool else _now)(write_png, folders, paths[f], placed.maps[b][f]) for f in plan.fields] if png else []
    labels = {}
    for f in plan.fields:
        a = dict(base, **placed.shape[b][f])
        a[EMPTY] = a["spread"] is None  # no mass: the sidebar can find such maps
        if plan.gt_field:
            # scores describe the stored 8-bit map, so scoring it later gives the same values
            cam = to_float(placed.maps[b][f])
            if region is False:  # one region per sample, shared by its maps
                region = region_mask(placed.objects[b], cam.shape, base.get("target_label"), c, plan.all_objects,
                                     mask_targets)
            a.update(region_scores(cam, region, plan.iou_threshold))
        if f in placed.road[b]:
            a["road"] = placed.road[b][f]
        labels[f] = (fo.Heatmap(map_path=paths[f], range=list(STORED_RANGE), **a) if png
                     else fo.Heatmap(map=placed.maps[b][f], range=list(STORED_RANGE), **a))
    if plan.agreement_field:
        labels[plan.agreement_field] = fo.DynamicEmbeddedDocument(**placed.agreement[b])
    if plan.detector:
        labels[plan.detections_field] = detections_label(plan, placed.detections[b])
    if pending is not None:
        pending.extend(writes)
    else:
        for w in writes:
            w.result()  # raises the first write's error
    return labels


class _now:
    """A future that ran at once (no pool)."""

    def __init__(self, fn, *args):
        fn(*args)

    def result(self):
        return None


def _agreement(r, order, groups):
    """Each group's mean over its pairs of the sample's correlation matrix ``r``."""
    at = {f: i for i, f in enumerate(order)}
    values = {}
    for name, fields in groups.items():
        corr = [float(r[at[a], at[b]]) for a, b in combinations(fields, 2)]
        corr = [c for c in corr if not math.isnan(c)]
        values[name] = float(np.mean(corr)) if corr else None
    return values


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
        self.folders = None  # the run's map folders, opened by the first batch (see _store)
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
        if self.folders is not None:
            self.folders.close()
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
        plan, labels, pending = self.plan, {}, []
        try:
            if self.folders is None and plan.storage == "png":
                # opened once, without following links: a folder swapped later cannot redirect a file
                self.folders = MapFolders(plan.output_dir, plan.fields)
            try:
                for b, sid in enumerate(placed.sample_ids):
                    labels[sid] = sample_labels(plan, placed, b, self.mask_targets, self._pool, pending, self.folders)
            finally:
                for w in pending:
                    w.exception()  # every file finished (or failed) before any is cleaned up
            for w in pending:
                w.result()  # the first write's error
            if self.folders is not None:
                self.folders.verify()  # no sample may point through a folder swapped since the run opened it
            self.claim.check_held()
            bulk_write(plan.dataset, labels)
        except BaseException:
            # this batch's files are referenced by nothing: removed, nothing half-written
            if self.folders is not None:
                self.folders.remove([os.path.join(plan.output_dir, f, sid + ".png")
                                     for sid in placed.sample_ids for f in plan.fields])
            raise
        schema.keep_declared(plan)
        now = time.time()
        self.claim.add(len(labels), placed.skipped, now - self._last)
        self._last = now
        self.written += len(labels)
