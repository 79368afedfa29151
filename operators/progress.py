"""Progress of long operator work: streamed to an open App, or saved on a
delegated operation."""
import queue
import threading

# a parameter set by the operators' Python ``__call__``: FiftyOne exhausts a
# generator without keeping what it returns, so a Python call gets the result
# directly (with the terminal's progress bar) instead of a stream for the App
PYTHON_CALL = "_python_call"


def label(pb):
    """``"12 / 40 samples"`` for a FiftyOne progress bar."""
    return f"{pb.iteration} / {pb.total} samples"


def run(ctx, work, total):
    """Runs ``work`` with a progress callback that reaches the user.

    Delegated, the progress is saved on the operation and the result is
    returned; from a Python ``__call__`` (see :data:`PYTHON_CALL`), the
    result is returned too. From the App, this returns a generator:
    the work runs in a thread while the generator yields its progress
    (``result = yield from run(...)`` inside an operator's generator).

    Args:
        ctx: the operator's execution context
        work: a callable taking FiftyOne's progress callback (it is called
            with a ``ProgressBar``); what it returns is the result
        total: the number of samples, for the first message
    """
    if ctx.delegated:
        return work(lambda pb: ctx.set_progress(progress=pb.progress, label=label(pb)))
    if returns_result(ctx):
        return work(None)  # FiftyOne's own progress bar, in the caller's terminal
    return _stream(ctx, work, total)


def returns_result(ctx):
    """Whether :func:`run` returns the result (rather than a generator)."""
    return ctx.delegated or bool(ctx.params.get(PYTHON_CALL))


def _stream(ctx, work, total):
    events = queue.Queue()

    def target():
        try:
            events.put(("done", work(lambda pb: events.put(("progress", pb)))))
        except BaseException as e:  # handed to the generator, which raises it
            events.put(("error", e))

    threading.Thread(target=target, name="cam-operator-work", daemon=True).start()
    yield ctx.ops.set_progress(progress=0.0, label=f"0 / {total} samples")
    while True:
        kind, value = events.get()
        if kind == "progress":
            yield ctx.ops.set_progress(progress=value.progress, label=label(value))
        elif kind == "error":
            raise value
        else:
            return value
