"""Many checkpoints into one store: bytes written and time per checkpoint as the store grows.

    python benchmarks/store_growth.py [--checkpoints 100] [--inputs 2000]

Each checkpoint is added with StoreWriter(append=True), as `satcli analyze` does for the second and later
checkpoints of a run: 4 layers (widths 64, 128, 256, 10) with activations of --inputs inputs and their
statistics. Bytes written are this process's write() bytes (/proc/self/io wchar), so a store that is
copied for every checkpoint shows O(n^2) total bytes and a time per checkpoint that grows with n.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from satcli.core.state import CheckpointMeta, LayerMeta, LayerStats
from satcli.store.writer import StoreWriter

WIDTHS = (64, 128, 256, 10)


def written_bytes() -> int:
    """Bytes this process has passed to write() so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def add_checkpoint(path: Path, index: int, inputs: int, rng: np.random.Generator) -> None:
    layers = [LayerMeta(f"l{i}", "Linear", "dense", w, i, "none", "none") for i, w in enumerate(WIDTHS)]
    meta = CheckpointMeta(f"c{index}.pt", "0" * 64, "export", "random", {}, {"delta": 0.99})
    with StoreWriter(path, {"command": "benchmark"}, append=index > 0) as writer:
        ckpt = writer.begin_checkpoint(meta, layers, store_activations=True)
        for start in range(0, inputs, 256):
            b = min(256, inputs - start)
            ckpt.append({m.name: rng.normal(size=(b, m.width)).astype(np.float32) for m in layers}, None)
        stats = {}
        for m in layers:
            m2 = np.eye(m.width) * inputs
            stats[m.name] = LayerStats(inputs, np.zeros(m.width), m2, np.ones(m.width), False)
        ckpt.finish(stats, [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=100)
    parser.add_argument("--inputs", type=int, default=2000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    report = {1, 2, 5, 10, 20, 50, 100, args.checkpoints}
    print(f"{'checkpoint':>10} {'seconds':>8} {'MB written':>11} {'total MB written':>17} {'store MB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grow.satcli.h5"
        total0 = written_bytes()
        for i in range(args.checkpoints):
            before, start = written_bytes(), time.perf_counter()
            add_checkpoint(path, i, args.inputs, rng)
            seconds, after = time.perf_counter() - start, written_bytes()
            if i + 1 in report:
                print(
                    f"{i + 1:>10} {seconds:8.3f} {(after - before) / 1e6:11.1f} {(after - total0) / 1e6:17.1f} "
                    f"{path.stat().st_size / 1e6:9.1f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
