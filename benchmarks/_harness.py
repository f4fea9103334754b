"""Shared pieces of the benchmark scripts: models, in-memory data, satcli and plain runs, timing.

Not a test helper: nothing here asserts a time. Scripts import it as ``import _harness`` (they run as
``python benchmarks/NAME.py``, which puts this folder on the import path).
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from satcli.core.results import CheckpointResult
from satcli.data import DataOptions, DataSource, open_data
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import analyze
from satcli.models import LoadedModel
from satcli.store.observer import StoreObserver
from satcli.store.writer import StoreWriter
from satcli.taps import Reduction

BATCH_SIZE = 256


def vgg(width_divisor: int = 8, num_classes: int = 10) -> nn.Sequential:
    """A VGG11-style CNN for 32x32x3 inputs, every conv width divided by `width_divisor`."""
    cfg: list[int | str] = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    layers: list[nn.Module] = []
    channels = 3
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        out = int(item) // width_divisor
        layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(inplace=True)]
        channels = out
    return nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Linear(channels, 256),
        nn.ReLU(inplace=True),
        nn.Linear(256, num_classes),
    )


def mlp(widths: tuple[int, ...] = (1024, 512, 256), in_features: int = 3 * 32 * 32, num_classes: int = 10) -> nn.Module:
    """A plain MLP on flattened 32x32x3 inputs."""
    layers: list[nn.Module] = [nn.Flatten()]
    previous = in_features
    for width in widths:
        layers += [nn.Linear(previous, width), nn.ReLU(inplace=True)]
        previous = width
    layers.append(nn.Linear(previous, num_classes))
    return nn.Sequential(*layers)


def loaded(module: nn.Module, name: str) -> LoadedModel:
    """Wrap an in-memory module the way satcli's loader would (no file behind it)."""
    module.eval()
    return LoadedModel(
        path=Path(name),
        sha256="0" * 64,
        format="module",
        module=module,
        device=torch.device("cpu"),
        arch=None,
        input_shape=None,
    )


def random_data(num_samples: int, shape: tuple[int, ...], workdir: Path, seed: int = 0) -> DataSource:
    """N random float32 inputs with labels, opened through satcli's array-file spec and materialized in RAM."""
    rng = np.random.default_rng(seed)
    path = workdir / f"random_{num_samples}_{'x'.join(map(str, shape))}.npz"
    if not path.exists():
        x = rng.standard_normal((num_samples, *shape), dtype=np.float32)
        y = rng.integers(0, 10, num_samples)
        np.savez(path, x=x, y=y)
    source = open_data(str(path), DataOptions(batch_size=BATCH_SIZE))
    source.materialize()  # decoded once: both timings below see the same in-memory batches
    return source


def plain_pass(model: LoadedModel, data: DataSource) -> None:
    """The floor: a torch.no_grad() forward loop over the same batches."""
    module = model.module
    with torch.no_grad():
        for x, _y in data.batches():
            module(x)


def satcli_pass(
    model: LoadedModel,
    data: DataSource,
    conv_method: str = "mean",
    store_activations: bool = True,
    workdir: Path | None = None,
    precision: str = "float64",
    classes: bool | None = None,
) -> CheckpointResult:
    """satcli's whole analysis: hooks, reduction, accumulation, eigenvalues and an HDF5 store, committed.

    `classes=False` leaves out the class spectra (saturation only, what delve computes)."""
    extra: dict[str, object] = {} if precision == "float64" else {"precision": precision}  # older satcli: none
    if classes is not None:
        extra["classes"] = classes
    options = AnalysisOptions(
        reduction=Reduction(conv_method=conv_method), store_activations=store_activations, **extra
    )
    folder = Path(workdir or tempfile.gettempdir())
    target = folder / "bench.satcli.h5"
    with StoreWriter(target) as store:
        result = analyze(model, data, options, [] if store is None else [StoreObserver.of(store, options)])
    target.unlink()
    return result


def busy_cpus(seconds: float = 0.5) -> float:
    """How many CPUs other processes keep busy, measured over `seconds` while this one sleeps (Linux)."""

    def sample() -> tuple[float, float]:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        values = [float(v) for v in fields]
        idle = values[3] + values[4]
        return sum(values) - idle, sum(values)

    try:
        busy0, total0 = sample()
        time.sleep(seconds)
        busy1, total1 = sample()
    except (OSError, IndexError, ValueError):
        return 0.0
    if total1 <= total0:
        return 0.0
    return (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1)


QUIET_LOG: list[float] = []


def wait_for_quiet(threshold: float = 0.15, patience: float = 120.0) -> None:
    """Wait (up to `patience` s) until other processes use less than `threshold` of a CPU.

    On a shared 2-core machine one busy neighbour stalls every OpenMP barrier of both runs, so a
    round timed next to one says nothing; the waited-for load is kept in QUIET_LOG and printed.
    """
    deadline = time.monotonic() + patience
    load = busy_cpus()
    while load > threshold and time.monotonic() < deadline:
        time.sleep(1.0)
        load = busy_cpus()
    QUIET_LOG.append(load)


def interleaved(
    runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, quiet: bool = True
) -> dict[str, list[float]]:
    """Wall times of each run, interleaved (A B C A B C ...), after `warmup` untimed rounds.

    With `quiet`, every timed run waits first until the machine is idle (see wait_for_quiet); without,
    the load each run started under is still recorded in QUIET_LOG.
    """
    for _ in range(warmup):
        for fn in runs.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            if quiet:
                wait_for_quiet()
            else:
                QUIET_LOG.append(busy_cpus())  # no waiting, but the load each run started under is still printed
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    """Median of a list of times."""
    return statistics.median(values)


def ratio_of_medians(numerator: list[float], denominator: list[float]) -> float:
    """Median time of one run divided by the median time of another."""
    return median(numerator) / median(denominator)


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of the per-round ratios (each round times both back to back, so slow drifts cancel)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def machine() -> str:
    """CPU model, cores, torch and thread settings, for the printed header."""
    model = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cpus, torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads, python {platform.python_version()}"
    )
