"""Progress of long operator work: streamed to an open App, or saved on a
delegated operation.

The work is handed a :class:`Reporter`: it announces each preparation step
(``reporter.step("Loading model 'x'")``) and passes the reporter itself as
FiftyOne's progress callback for its batches. In the App, the step in
progress is repeated every :data:`TICK` seconds with its elapsed time, so a
long first batch does not look stuck (and FiftyOne's progress dialog, whose
"Done" button only hides it, comes back while the work goes on).
"""
import queue
import threading
import time

# a parameter set by the operators' Python ``__call__``: FiftyOne exhausts a
# generator without keeping what it returns, so a Python call gets the result
# directly (with the terminal's progress bar) instead of a stream for the App
PYTHON_CALL = "_python_call"

# seconds between two messages to the App while a step goes on
TICK = 1.0


def label(pb, batch_size=None):
    """``"12 / 40 samples"`` for a FiftyOne progress bar; with ``batch_size``
    and samples left, the batch now computed: ``"12 / 40 samples, computing
    batch 2 of 4"``."""
    text = f"{pb.iteration} / {pb.total} samples"
    if batch_size and pb.total and pb.iteration < pb.total:
        text += f", computing batch {pb.iteration // batch_size + 1} of {-(-pb.total // batch_size)}"
    return text


class Reporter:
    """What a job tells the user while it runs.

    Args:
        emit: called with ``(progress, label)`` for each message
        batch_size (None): the job's batch size, for the batch labels (the
            job may set it once known)
    """

    def __init__(self, emit=None, batch_size=None):
        self._emit = emit
        self.batch_size = batch_size

    def step(self, text, progress=0.0):
        """Announces a step before the batches (loading the model, declaring the run)."""
        if self._emit is not None:
            self._emit(progress, text)

    def __call__(self, pb):
        """FiftyOne's progress callback (``progress=reporter``): one message per batch."""
        if self._emit is not None:
            self._emit(pb.progress, label(pb, self.batch_size))


def contained(work):
    """``work`` whose ``SystemExit`` (any ``BaseException`` but a
    ``KeyboardInterrupt``) is raised as a ``RuntimeError``, which FiftyOne
    reports as the operation's failure. A model's code that calls
    ``sys.exit`` must fail its operation, not end the App server or the
    delegated worker (which would leave the operation running forever)."""

    def guarded(*args, **kwargs):
        try:
            return work(*args, **kwargs)
        except (Exception, KeyboardInterrupt):
            raise
        except BaseException as e:
            what = f"sys.exit({e.code!r})" if isinstance(e, SystemExit) else type(e).__name__
            raise RuntimeError(f"the model's code stopped the operation with {what}") from e

    return guarded


def run(ctx, work, total, first=None):
    """Runs ``work`` with a :class:`Reporter` that reaches the user.

    Delegated, the progress is saved on the operation and the result is
    returned; from a Python ``__call__`` (see :data:`PYTHON_CALL`), the
    result is returned too (the reporter is silent: FiftyOne's own progress
    bar shows in the caller's terminal). From the App, this returns a
    generator: the work runs in a thread while the generator yields its
    progress (``result = yield from run(...)`` inside an operator's generator).

    Args:
        ctx: the operator's execution context
        work: a callable taking the :class:`Reporter` (also FiftyOne's
            progress callback); what it returns is the result
        total: the number of samples, for the first message
        first (None): the first message in the App (default ``"0 / <total> samples"``)
    """
    work = contained(work)
    if ctx.delegated:
        return work(Reporter(lambda p, text: ctx.set_progress(progress=p, label=text)))
    if returns_result(ctx):
        return work(Reporter())
    return _stream(ctx, work, first or f"0 / {total} samples")


def returns_result(ctx):
    """Whether :func:`run` returns the result (rather than a generator)."""
    return ctx.delegated or bool(ctx.params.get(PYTHON_CALL))


def _stream(ctx, work, first):
    events = queue.Queue()
    reporter = Reporter(lambda p, text: events.put(("progress", (p, text))))

    def target():
        try:
            events.put(("done", work(reporter)))
        except BaseException as e:  # handed to the generator, which raises it
            events.put(("error", e))

    current, since = (0.0, first), time.time()
    yield ctx.ops.set_progress(progress=current[0], label=current[1])
    threading.Thread(target=target, name="cam-operator-work", daemon=True).start()
    while True:
        try:
            kind, value = events.get(timeout=TICK)
        except queue.Empty:  # the same step, still going
            yield ctx.ops.set_progress(progress=current[0], label=f"{current[1]} ({time.time() - since:.0f} s)")
            continue
        if kind == "progress":
            current, since = value, time.time()
            yield ctx.ops.set_progress(progress=current[0], label=current[1])
        elif kind == "error":
            raise value
        else:
            return value
