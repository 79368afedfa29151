"""The delegated operations of a run's shards: queueing one, whether one can
still run, and marking one failed when its shard was taken over."""
from bson import ObjectId

from ..runs import shards

SHARD_OPERATOR = "@fiftyone-cam/cam/compute_cam_shard"


def queue(dataset, run_key, shard, delegation_target=None):
    """Queues the operation that computes one shard; returns its id."""
    import fiftyone.operators as foo

    result = foo.execute_operator(SHARD_OPERATOR, ctx={"dataset": dataset}, params={"run_key": run_key, "shard": shard},
                                  request_delegation=True, delegation_target=delegation_target)
    if result.error:
        raise RuntimeError(f"queueing shard {shard} of run '{run_key}' failed: {result.error}")
    op_id = result.result["id"]
    shards.set_op(dataset, run_key, shard, op_id)
    return str(op_id)


def gone(op_id):
    """Whether a queued shard's operation can no longer run (failed, or deleted)."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    if op_id is None:
        return True
    try:
        op = DelegatedOperationService().get(ObjectId(op_id))
    except Exception:  # deleted
        return True
    return op is None or op.run_state == ExecutionRunState.FAILED


def taken_over(op_id, reason):
    """Marks the operation of a shard taken over from a dead worker failed
    with ``reason``, if FiftyOne still has it running (its worker was killed
    before it could say anything). Returns whether it was marked."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionResult, ExecutionRunState

    try:
        doc = DelegatedOperationService().set_failed(
            ObjectId(op_id), result=ExecutionResult(error=reason, error_message=reason),
            required_state=ExecutionRunState.RUNNING)
    except Exception:  # deleted meanwhile, or never a valid id
        return False
    return doc is not None
