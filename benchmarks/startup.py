"""Start-up time of the CLI: `satcli --version`, `satcli --help` and `satcli analyze --help`.

    python benchmarks/startup.py [--repeats 7]

Each command runs as a fresh `python -m satcli` subprocess, as a shell loop or CI step would; the median
wall time over the repeats is printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    commands = (["--version"], ["--help"], ["analyze", "--help"])
    times: dict[str, list[float]] = {" ".join(c): [] for c in commands}
    for _ in range(args.repeats):  # interleaved
        for command in commands:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "satcli", *command], capture_output=True, check=True)
            times[" ".join(command)].append(time.perf_counter() - start)
    for name, values in times.items():
        spread = f"min {min(values):.2f}, max {max(values):.2f}"
        print(f"satcli {name:<16} median {statistics.median(values):.2f} s  ({spread})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
