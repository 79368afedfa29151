"""From a batch's placed maps to what is stored, overlapped with the next batch.

The main thread places each map in its image's frame, converts it to 8 bits
and computes its shape scores and the agreement on the model's device
(:func:`cam_core.compute.placing.place_batch`); only uint8 maps and the
scores cross to the CPU. A :class:`BatchWriter` thread then scores them against ground truth, encodes
the PNGs (a small thread pool), and writes each sample's fields with one bulk write
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

import fiftyone as fo
from bson import ObjectId
from pymongo import UpdateOne

from ..engine.targets import class_name
from ..labels import mask_targets_of
from ..media.mapdirs import MapFolders
from ..media.mapfiles import STORED_RANGE, to_float, write_png
from ..scoring import region_mask, region_scores
from ..scoring.names import EMPTY, MAP_SCALE, NUM_OBJECTS
from . import schema
from .detect import detections_label


def sample_labels(plan, placed, b, mask_targets=None, pool=None, pending=None, folders=None):
    """``{field: label}`` of row ``b`` of a :class:`cam_core.compute.placing.PlacedBatch`: its Heatmaps
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
    """Stores :class:`cam_core.compute.placing.PlacedBatch` es on a thread while the next batch is
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
