"""A compute_cams run in its own process, for the run-safety tests, with an
optional fault: killed (SIGKILL, no cleanup) just before the database update
of a given batch, or slowed so that other processes act while it runs.

    python cam_child.py '<json>'   keys: dataset, run_key, kwargs (compute_cams'),
                                   kill_before_write (batch number, 1-based),
                                   kill_in_results (killed once the results are in
                                   GridFS, before the run's record points at them),
                                   sleep (seconds after each batch),
                                   shard (run this shard of a queued run instead)

Prints one JSON line: {"ok": true, "num_samples": ...} or {"ok": false,
"error": type, "param": ..., "message": ...}.
"""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(spec):
    import fiftyone as fo
    import torchvision.transforms as T

    import cam_core
    import models
    from cam_core.compute import batch, writer

    writes = {"n": 0}
    if spec.get("kill_before_write"):
        real_write = writer.bulk_write

        def write_or_die(dataset, labels):
            writes["n"] += 1
            if writes["n"] == spec["kill_before_write"]:
                os.kill(os.getpid(), signal.SIGKILL)  # the files of this batch are written, the database is not
            return real_write(dataset, labels)

        writer.bulk_write = write_or_die
    if spec.get("sleep"):
        real_explain = batch.explain

        def slow_explain(*args):
            out = real_explain(*args)
            time.sleep(spec["sleep"])
            return out

        batch.explain = slow_explain

    if spec.get("kill_in_results"):
        from mongoengine.fields import GridFSProxy

        real_put = GridFSProxy.put

        def put_and_die(self, *args, **kwargs):
            real_put(self, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)  # FiftyOne deleted the old results and wrote the new ones

        GridFSProxy.put = put_and_die

    dataset = fo.load_dataset(spec["dataset"])
    if "shard" in spec:
        status = cam_core.checks.run_shard(dataset, spec["run_key"], spec["shard"])
        print(json.dumps({"ok": True, "num_samples": status.num_samples if status else None}))
        return
    kwargs = dict(spec.get("kwargs") or {})
    try:
        res = cam_core.compute_cams(dataset, models.resnet18(), run_key=spec["run_key"], batch_size=4,
                                    transforms=T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()]), **kwargs)
    except cam_core.CamArgumentError as e:
        print(json.dumps({"ok": False, "error": type(e).__name__, "param": e.param, "message": str(e)}))
        return
    print(json.dumps({"ok": True, "num_samples": res.num_samples, "seconds": res.seconds}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
