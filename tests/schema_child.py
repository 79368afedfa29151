"""One process of the schema storm (tests/test_schema_storm.py).

    python schema_child.py '<json>'   keys: dataset, role ("storm": another tool
                                      adding its own fields with FiftyOne's
                                      add_sample_field; "declare": CAM runs with
                                      new keys declaring theirs), name, rounds,
                                      ready (a file to create once set up),
                                      go (a file to wait for), lock (storm only)

Each round adds one field (or one run's fields) and sets a value of it on
every sample. Prints one JSON line: {"fields": [...]}.
"""
import dataclasses
import fcntl
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def storm(ds, spec):
    import fiftyone as fo

    fields = []
    for i in range(spec["rounds"]):
        field = f"{spec['name']}_{i}"
        # the storm processes take turns among themselves: add_sample_field itself
        # writes the whole field list, so two of them would drop each other's (FiftyOne's race, not ours)
        with open(spec["lock"], "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ds.add_sample_field(field, fo.StringField)
        ds._sample_collection.update_many({}, {"$set": {field: f"value {i}"}})
        fields.append(field)
    return fields


def declare(ds, spec):
    import fiftyone as fo
    import torchvision.transforms as T

    import cam_core
    import models
    from cam_core.compute import schema
    from cam_core.compute.plan import run_fields

    plan = cam_core.checks.check_compute_args(ds, models.resnet18(), run_key=f"{spec['name']}_0", storage="inline",
                                       methods="gradcam", layers="layer4",
                                       transforms=T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()]))
    wait(spec)
    fields = []
    for i in range(spec["rounds"]):
        key = f"{spec['name']}_{i}"
        run = dataclasses.replace(plan, run_key=key, fields=run_fields(key, plan.methods, [x.name for x in plan.layers]))
        schema.declare(run)  # what open_run does for each new run
        values = {f: fo.Heatmap(map_path="/maps/x.png", spread=0.5).to_mongo() for f in run.fields}
        ds._sample_collection.update_many({}, {"$set": values})
        fields += list(run.fields)
    return fields


def wait(spec):
    open(spec["ready"], "w").close()
    while not os.path.exists(spec["go"]):
        time.sleep(0.05)


def main(spec):
    import fiftyone as fo

    ds = fo.load_dataset(spec["dataset"])
    if spec["role"] == "storm":
        wait(spec)
        fields = storm(ds, spec)
    else:
        fields = declare(ds, spec)
    print(json.dumps({"fields": fields}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
