"""How busy the device is during a run, for the benchmarks (benchmarks/bench_cams.py on CUDA):
each batch's device time (``torch.cuda.Event`` pairs around its forward, backward and maps) against
the wall time between batches, which also holds the decoding, the placing, and the waits on the
writer's thread (PNG encoding, scores, database writes). Off unless a benchmark records::

    with timing.recording() as timeline:
        cam_core.compute_cams(...)
    timeline.summary()   # {"batches", "wall_s", "device_busy_s", "device_idle_share", ...}

Inactive, a batch pays one attribute read.
"""
import contextlib
import time

_ACTIVE = None


class Timeline:
    """The batches of one run: (wall start, wall end, start event, end event) each."""

    def __init__(self):
        self.parts = []

    def summary(self):
        """Wall time from the first batch's start to the last one's end, the device's busy time
        within it (CUDA only; None elsewhere) and the share of the wall time it was idle."""
        import torch

        if not self.parts:
            return {"batches": 0}
        wall = self.parts[-1][1] - self.parts[0][0]
        busy = None
        if self.parts[0][2] is not None:
            torch.cuda.synchronize()
            busy = sum(start.elapsed_time(end) for _, _, start, end in self.parts) / 1000
        return {"batches": len(self.parts), "wall_s": wall, "device_busy_s": busy,
                "device_idle_share": None if busy is None or wall <= 0 else max(0.0, 1 - busy / wall),
                "per_batch_wall_s": [e - s for s, e, _, _ in self.parts]}


@contextlib.contextmanager
def recording():
    """Records the batches of the runs in the block (one process, one run at a time)."""
    global _ACTIVE
    _ACTIVE = Timeline()
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = None


@contextlib.contextmanager
def part(device):
    """Around one batch's pass on ``device``: recorded when a benchmark records, else nothing."""
    timeline = _ACTIVE
    if timeline is None:
        yield
        return
    import torch

    cuda = str(device).startswith("cuda") and torch.cuda.is_available()
    start = end = None
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    t0 = time.perf_counter()
    yield
    if cuda:
        end.record()
    timeline.parts.append((t0, time.perf_counter(), start, end))
