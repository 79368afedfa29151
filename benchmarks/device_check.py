"""One prepared check of a device (a GPU when one is lent): the equivalence tests on it, then the
benchmarks, all figures in one JSON file with the device's name.

    .venv/bin/python benchmarks/device_check.py                  # CUDA if there is one, else the CPU
    .venv/bin/python benchmarks/device_check.py --device cpu --quick --out check.json

Nothing to install beyond scripts/setup.sh. Steps, each in its own process (a failing step is
recorded with its output's tail and the others still run):

  equivalence  tests/test_equivalence.py's cases on the device (the CPU's and CUDA's are the same
               tests, parametrised by device; without CUDA the CUDA ones report as skipped, and the
               JSON says so: skipped is never counted as passed)
  resnet50     benchmarks/bench_cams.py: ResNet-50, GradCAM, GradCAM++, XGradCAM, HiResCAM,
               LayerCAM, EigenGradCAM x layer1-layer4 (24 maps per image), batch 64 on 512 images:
               images/s, compute_cams / floor measured in the same run, peak RSS and GPU memory
  vit          the same for timm's DeiT-tiny (4 methods x 2 layers)
  detector     benchmarks/bench_detection.py: a torchvision Faster R-CNN, per object
  yolo         benchmarks/bench_yolo.py: Ultralytics YOLOv8n (random weights), per box
  explain      benchmarks/bench_explain.py: cam_core.explain of one 224-pixel image, cached model

``--quick`` shrinks every size (a few images, a few equivalence cases) so that the CPU path runs
end to end in a few minutes: the GPU run then only changes the device. On a GPU the full check
takes about 3 to 5 minutes, most of it loading models and starting processes.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# (images, batch) of the two sizes
FULL = {"cams_images": 512, "cams_batch": 64, "vit_images": 512, "det_images": 16, "det_batch": 8, "det_size": 640,
        "objects": 5, "yolo_images": 16, "yolo_batch": 8, "yolo_size": 640, "repeats": 3}
QUICK = {"cams_images": 4, "cams_batch": 2, "vit_images": 4, "det_images": 2, "det_batch": 2, "det_size": 160,
         "objects": 2, "yolo_images": 2, "yolo_batch": 2, "yolo_size": 128, "repeats": 1}
QUICK_TESTS = "resnet18 and (gradcam- or hirescam-)"  # a few cases of the same tests


def device_facts(device):
    """The device's name and the software that ran on it."""
    import torch

    facts = {"device": device, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
             "cpu_count": os.cpu_count(), "cuda_available": torch.cuda.is_available()}
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return facts


def run(cmd, timeout):
    """Runs ``cmd`` from the repository; returns (return code, seconds, the output's tail)."""
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                             env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))))
        code, text = out.returncode, out.stdout + out.stderr
    except subprocess.TimeoutExpired as e:
        code, text = "timeout", f"{e.stdout or ''}{e.stderr or ''}"
        text = text.decode(errors="replace") if isinstance(text, bytes) else text
    return code, time.perf_counter() - start, text[-3000:]


def equivalence(device, quick, timeout):
    """The equivalence tests on ``device``: counts of passed, failed and skipped cases (with reasons)."""
    report = os.path.join(tempfile.mkdtemp(prefix="device-check-"), "junit.xml")
    selection = f"{device} and ({QUICK_TESTS})" if quick else device
    code, seconds, tail = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                               "tests/test_equivalence.py", "-k", selection, f"--junitxml={report}"], timeout)
    counts = {"passed": 0, "failed": 0, "skipped": 0, "skip_reasons": []}
    if os.path.isfile(report):
        for case in ET.parse(report).getroot().iter("testcase"):
            skipped = case.find("skipped")
            failed = case.find("failure") if case.find("failure") is not None else case.find("error")
            if skipped is not None:
                counts["skipped"] += 1
                reason = skipped.get("message", "")
                if reason not in counts["skip_reasons"]:
                    counts["skip_reasons"].append(reason)
            elif failed is not None:
                counts["failed"] += 1
            else:
                counts["passed"] += 1
    counts.update(returncode=code, seconds=seconds, selection=selection)
    if code not in (0, 5):  # 5: nothing collected
        counts["output_tail"] = tail
    return counts


def bench(script, args, timeout):
    """A benchmark script with ``--json``: its figures, or its failure."""
    out = os.path.join(tempfile.mkdtemp(prefix="device-check-"), "figures.json")
    code, seconds, tail = run([sys.executable, os.path.join(HERE, script), *map(str, args), "--json", out], timeout)
    if code != 0 or not os.path.isfile(out):
        return {"returncode": code, "seconds": seconds, "output_tail": tail}
    with open(out) as f:
        figures = json.load(f)
    figures["seconds"] = seconds
    return figures


def cams_summary(figures, case):
    """images/s of compute_cams, its ratio to the floor and its peaks, from bench_cams' JSON."""
    if "cases" not in figures:
        return figures
    r = figures["cases"][case]
    floor, ours = r["floor"], r["compute_cams"]
    return {"images": ours["images"], "images_per_second": ours["images"] / ours["seconds"],
            "floor_images_per_second": floor["images"] / floor["seconds"],
            "ours_over_floor": ours["per_image"] / floor["per_image"], "peak_rss_mb": ours["peak_rss_mb"],
            "peak_gpu_mb": ours.get("peak_gpu_mb"), "seconds": figures["seconds"],
            # CUDA: the device's busy time per batch against the wall time (cam_core.compute.timing)
            "device_idle_share": (ours.get("timeline") or {}).get("device_idle_share"),
            "timeline": {k: v for k, v in (ours.get("timeline") or {}).items() if k != "per_batch_wall_s"}}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="tiny sizes: the CPU path end to end in a few minutes")
    p.add_argument("--steps", nargs="+", default=["equivalence", "resnet50", "vit", "detector", "yolo", "explain"])
    p.add_argument("--out", default="device_check.json")
    p.add_argument("--timeout", type=int, default=600, help="seconds each step may take")
    args = p.parse_args()
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    s = QUICK if args.quick else FULL
    threads = str(len(os.sched_getaffinity(0)))
    report = {"facts": device_facts(device), "quick": args.quick, "sizes": s, "steps": {}}
    started = time.perf_counter()
    for step in args.steps:
        print(f"{step} ...", flush=True)
        if step == "equivalence":
            result = equivalence(device, args.quick, args.timeout)
        elif step in ("resnet50", "vit"):
            case = "resnet50" if step == "resnet50" else "deit"
            images = s["cams_images"] if step == "resnet50" else s["vit_images"]
            result = cams_summary(bench("bench_cams.py", ["--case", case, "--images", images, "--batch-size",
                                                          s["cams_batch"], "--tutorial-images", 0, "--device", device,
                                                          "--threads", threads, "--num-workers", 2], args.timeout), case)
        elif step == "detector":
            result = bench("bench_detection.py", ["--images", s["det_images"], "--batch", s["det_batch"], "--size",
                                                  s["det_size"], "--objects", s["objects"], "--repeats", s["repeats"],
                                                  "--device", device], args.timeout)
        elif step == "yolo":
            result = bench("bench_yolo.py", ["--images", s["yolo_images"], "--batch", s["yolo_batch"], "--size",
                                             s["yolo_size"], "--objects", s["objects"], "--repeats", s["repeats"],
                                             "--device", device], args.timeout)
        elif step == "explain":
            result = bench("bench_explain.py", ["--samples", 0, "--repeats", s["repeats"] + 2, "--device", device],
                           args.timeout)
        else:
            sys.exit(f"unknown step {step!r}")
        report["steps"][step] = result
        print(f"  {json.dumps({k: v for k, v in result.items() if k != 'output_tail'})[:400]}", flush=True)
    report["seconds"] = time.perf_counter() - started
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    failed = [k for k, v in report["steps"].items() if v.get("returncode") not in (None, 0) or v.get("failed")]
    print(f"\n{report['facts'].get('gpu', device)}: {report['seconds']:.0f} s; figures in {args.out}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
