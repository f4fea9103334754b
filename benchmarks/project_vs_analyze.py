"""Time `satcli project` against `satcli analyze` on the same model and data.

    python benchmarks/project_vs_analyze.py [--repeats 3]

Runs, interleaved and as subprocesses like a shell would, ``satcli analyze sample_models/sensible.pt2 --data
digits --no-store -q -f json`` and ``satcli project sample_models/sensible.pt2 --data digits -f json`` and
prints the median wall time of each; then the same work in one process, model and data loaded once, so
start-up (Python, torch, the first torch.export load) is left out. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from satcli.data import DataOptions, open_data
from satcli.engine.options import AnalysisOptions
from satcli.engine.project import project
from satcli.engine.run import analyze
from satcli.models import load_model

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "sample_models" / "sensible.pt2"


def wall(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "satcli", *command], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"satcli {' '.join(command)} failed: {proc.stderr.strip()}")
    return time.perf_counter() - start, proc.stdout


def in_process(repeats: int) -> tuple[list[float], list[float]]:
    model = load_model(MODEL, device="cpu")
    data = open_data("digits", DataOptions())
    runs: dict[str, Callable[[], object]] = {
        "analyze": lambda: analyze(model, data, AnalysisOptions(store_activations=False)),
        "project": lambda: project(model, data),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats + 1):  # the first round warms up and is dropped
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times["analyze"][1:], times["project"][1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    analyze_cmd = ["analyze", str(MODEL), "--data", "digits", "--no-store", "-q", "-f", "json"]
    project_cmd = ["project", str(MODEL), "--data", "digits", "-f", "json"]
    a_times, p_times, passes = [], [], 0
    for _ in range(args.repeats):
        a_times.append(wall(analyze_cmd)[0])
        seconds, out = wall(project_cmd)
        p_times.append(seconds)
        passes = json.loads(out)["passes"]
    a_in, p_in = in_process(args.repeats)
    print(
        f"{MODEL.name}, digits test split (599 inputs), torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"project: {passes} forward passes (1 fit + 1 base + {passes - 2} projected variants)")
    for label, a, p in (("as commands", a_times, p_times), ("in one process", a_in, p_in)):
        ma, mp = statistics.median(a), statistics.median(p)
        print(
            f"{label}: analyze median {ma:.2f} s {[round(x, 2) for x in a]}, "
            f"project median {mp:.2f} s {[round(x, 2) for x in p]}; "
            f"ratio of medians {mp / ma:.1f}x, of minima {min(p) / min(a):.1f}x"
        )


if __name__ == "__main__":
    main()
