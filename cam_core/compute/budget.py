"""How much memory a run may take, what one batch takes, and how many images a
batch may hold so that the process stays within it.

The budget is a share of what the device has free when the run starts: on
CUDA, :data:`CUDA_SHARE` of the GPU's free memory (``torch.cuda.mem_get_info``,
plus what torch's cache holds unused); on the CPU, :data:`CPU_SHARE` of the
available RAM (``MemAvailable`` of ``/proc/meminfo``, or ``psutil``, and no
more than a cgroup's limit leaves), so a run never pushes the machine into
swap or the kernel's OOM killer. A batch's cost is measured, not guessed: the
peak memory the batch adds over what was in use when it started
(:class:`PeakMeter`), CUDA's allocator peak or the process's peak RSS. The
:class:`BatchPlanner` turns the cost per image of the first small batch of
the real images (:data:`FIRST_BATCH`; a detector's per-object backwards
included) into the largest batch that fits, and shrinks it if a later batch
costs more per image.
"""
import contextlib
import ctypes
import logging

import torch

logger = logging.getLogger(__name__)

CPU_SHARE = 0.5  # of the RAM available when the run starts
CUDA_SHARE = 0.8  # of the GPU memory free when the run starts
FIRST_BATCH = 2  # images in the batch measured before the rest is planned
AUTO_LIMIT = {"cuda": 512}  # the largest automatic batch, per device type
DEFAULT_LIMIT = 64  # ... elsewhere: a larger batch is no faster on a CPU
UNMEASURED = 16  # the automatic batch where no measurement is possible (e.g. MPS)


def available_bytes(device):
    """The memory a run could still take on ``device``, in bytes; None where it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    avail = _meminfo_available()
    room = _cgroup_room()
    if avail is None:
        return room
    return avail if room is None else min(avail, room)


def budget_bytes(device):
    """The memory a run may add on ``device``: its share of :func:`available_bytes` (None: unknown)."""
    avail = available_bytes(device)
    share = CUDA_SHARE if torch.device(device).type == "cuda" else CPU_SHARE
    return None if avail is None else int(avail * share)


def _meminfo_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return psutil.virtual_memory().available


# (limit, usage) files of a memory cgroup: v2, then v1
CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def _cgroup_room(files=CGROUP_FILES):
    """What this process's memory cgroup still allows; None without a limit."""
    for limit, usage in files:
        try:
            with open(limit) as f:
                text = f.read().strip()
            with open(usage) as f:
                used = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if text == "max" or int(text) >= 1 << 60:
            return None
        return max(0, int(text) - used)
    return None


def _rss_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


class PeakMeter:
    """Measures the peak memory the block adds over what was in use when it
    began: ``with PeakMeter(device) as m: ...``, then ``m.peak`` (bytes, or
    None where it cannot be measured).

    On CUDA: the allocator's peak (``torch.cuda.max_memory_allocated``, reset
    at the start). On Linux: the process's peak RSS (``VmHWM``), reset through
    ``/proc/self/clear_refs`` at the start, after glibc returned its free
    memory to the system (``malloc_trim``: memory freed by an earlier batch
    and kept by malloc would be reused without showing in the RSS).
    Elsewhere: None. Other threads' allocations in the block count too.
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak = None

    def __enter__(self):
        self._start = None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        elif self.device.type == "cpu":
            self._start = _reset_rss_peak()
        return self

    def __exit__(self, *exc):
        if self._start is None:
            return False
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = max(0, torch.cuda.max_memory_allocated(self.device) - self._start)
        else:
            self.peak = max(0, _rss_bytes("VmHWM") - self._start)
        return False


def _reset_rss_peak():
    """Returns the RSS after resetting the peak to it; None where Linux's
    /proc interface is missing."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the RSS may then hide reusable memory (costs are underestimated)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return _rss_bytes("VmRSS")
    except OSError:
        return None


class BatchPlanner:
    """The sub-batches of a run, sized to its memory budget.

    Args:
        batch_size: ``"auto"`` (the largest batch that fits, up to
            :data:`AUTO_LIMIT`), or an integer: the user's choice, kept as it is
            unless ``protect``
        device: the run's torch device
        protect (False): also split an integer batch into sub-batches whose
            measured cost fits (detectors: a batch's per-object backwards can
            take many GB)
        budget (None): bytes; default :func:`budget_bytes` of ``device`` now

    Attributes:
        size: the most images of the next sub-batch
        settled: whether ``size`` is final for the loader (an integer batch,
            or an automatic one measured)
    """

    def __init__(self, batch_size, device, protect=False, budget=None):
        self.device = torch.device(device)
        self.auto = batch_size == "auto"
        self.limit = AUTO_LIMIT.get(self.device.type, DEFAULT_LIMIT) if self.auto else int(batch_size)
        self.measures = self.auto or bool(protect)
        self.budget = budget_bytes(self.device) if budget is None and self.measures else budget
        self.per_image = None  # bytes, the most measured
        self.size = self.limit
        if self.measures:
            self.size = min(FIRST_BATCH, self.limit) if self.budget is not None else min(UNMEASURED, self.limit)
        self.settled = not self.auto or self.budget is None
        self._warned = False

    def split(self, items):
        """``items`` as consecutive sub-batches, each of at most the
        :attr:`size` planned when it is drawn (after the parts before it were
        measured)."""
        if not self.measures:
            yield items
            return
        start = 0
        while start < len(items):
            part = items[start:start + self.size]
            start += len(part)
            yield part

    @contextlib.contextmanager
    def measured(self, n):
        """Measures the sub-batch of ``n`` images run in the block, and plans the next."""
        if not self.measures or self.budget is None:
            yield
            return
        with PeakMeter(self.device) as meter:
            yield
        if meter.peak is not None:
            self.observe(n, meter.peak)
        elif not self.settled:  # nothing to measure with here
            self.size, self.settled = min(UNMEASURED, self.limit), True

    def observe(self, n, peak):
        """Plans from a sub-batch of ``n`` images that took ``peak`` bytes.

        The cost per image is the most seen (a first batch of two images
        carries the batch's fixed cost too: the estimate errs on the safe
        side), so the size only shrinks once settled.
        """
        self.per_image = max(self.per_image or 0, peak / max(n, 1), 1)
        fit = int(self.budget // self.per_image)
        if fit < 1 and not self._warned:
            self._warned = True
            logger.warning("cam_core: one image takes %.1f GB, more than the run's memory budget of %.1f GB: "
                           "batches of one image", self.per_image / 2**30, self.budget / 2**30)
        self.size = max(1, min(self.limit, fit))
        if not self.settled:
            self.settled = True
            logger.info("cam_core: %.0f MB per image measured; batches of %d images (budget %.1f GB)",
                        self.per_image / 2**20, self.size, self.budget / 2**30)
