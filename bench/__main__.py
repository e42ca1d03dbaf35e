"""`python -m bench [--quick] [--only NAME,...] [--repeat N] [--output PATH]`: one table."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.report import REPO

for _folder in ("workers", "platform"):
    if str(REPO / _folder) not in sys.path:
        sys.path.insert(0, str(REPO / _folder))

from bench.report import machine_info, read_intro, render_doc, render_table, row  # noqa: E402

# Run order: hub scale last, because it sets Django up in this process.
BENCHMARKS = {
    "training": "bench.training",
    "datapath": "bench.datapath",
    "ingest": "bench.ingest",
    "upload": "bench.upload",
    "inference": "bench.inference",
    "quality": "bench.quality",
    "crosssite": "bench.crosssite",
    "predict_api": "bench.predict_api",
    "segmentation": "bench.segmentation",
    "federated_segmentation": "bench.federated_segmentation",
    "hubscale": "bench.hubscale",
}
DOC = REPO / "docs" / "benchmarks.md"
NOTES = [
    "`prediction API` is what a hospital system waits for: a real hub (gunicorn with the "
    "deployed config, PostgreSQL, Redis) and a real site agent process on the CPU (S3 "
    "storage with the site's own identity) on this machine. One site publishes EfficientNet-Lite0 (ImageNet "
    "weights) through the real publish flow; another uploads BreastMNIST test images through "
    "presigned URLs, then each request is `POST /api/v1/predictions/` for one image and "
    "`GET /api/v1/predictions/{id}/?wait=30` until final, timed at the client with a "
    "site-scoped token (one `requests.Session` per client thread). The baseline is the bare "
    "forward pass of the same weights on the same preprocessed image in the bench process. "
    "Every answer must be `succeeded` with the baseline's probabilities (TTA: in-process "
    "`predict` with TTA), and a heatmap request must return its overlay. The 'where a "
    "request's time goes' rows split the median request using the hub's timestamps and the "
    "agent's own timings. The agent runs one prediction at a time (one infer worker), so at "
    "concurrency 8 most of a request is waiting its turn. Sites, tokens and the trained "
    "model version are seeded by a Django script (as an administrator and a training job "
    "would leave them); everything else goes through the API.",
    "`inference` runs the agent's `predict` in-process; at concurrency 8 each worker thread has "
    "its own copy of the model (Grad-CAM hooks the model's modules, so one shared model is not "
    "safe to explain from several threads at once).",
    "`training` progress reports go through the agent's real HubClient to a stand-in HTTP "
    "server on the same host (it answers 200 at once), so they cost the round trip, not the "
    "hub's database work; checkpoints go to the real S3 server.",
]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small settings (about 5 minutes)")
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (default 3)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the Markdown (default docs/benchmarks.md when all benchmarks run)",
    )
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    args.chosen = [n for n in BENCHMARKS if n in chosen]
    args.repeat = args.repeat or 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.output is None and not args.only:
        args.output = DOC
    return args


def run_one(name: str, quick: bool, repeat: int) -> tuple[list[dict[str, Any]], bool]:
    """Rows of one benchmark, and whether it passed; a failure becomes a visible row."""
    module_name = BENCHMARKS[name]
    if importlib.util.find_spec(module_name) is None:
        return [], True  # an optional module (crosssite) that is not written yet
    try:
        module = importlib.import_module(module_name)
        if "repeat" in inspect.signature(module.run).parameters:
            return list(module.run(quick=quick, repeat=repeat)), True
        return list(module.run(quick)), True
    except Exception as exc:
        traceback.print_exc()
        message = f"FAILED: {exc.__class__.__name__}: {exc}"
        return [row(name, "", "error", message[:300])], False


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    started = time.perf_counter()
    machine = machine_info()
    rows: list[dict[str, Any]] = []
    ok = True
    for name in args.chosen:
        began = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        got, passed = run_one(name, args.quick, args.repeat)
        ok = ok and passed
        rows.extend(got)
        print(f"[bench] {name}: {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    from bench import fixtures

    fixtures.cleanup_s3()
    seconds = time.perf_counter() - started
    print(render_table(rows))
    if args.output is not None:
        mode = "quick (`python -m bench --quick`)" if args.quick else "full (`make bench`)"
        if args.only:
            mode += f", only {', '.join(args.chosen)}"
        text = render_doc(
            rows,
            machine,
            mode=f"{mode}, {args.repeat} repetitions",
            notes=NOTES,
            intro=read_intro(args.output),
            seconds=seconds,
        )
        args.output.write_text(text)
        print(f"[bench] wrote {args.output}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
