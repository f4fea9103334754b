"""Transformer-scale runs: wall time, peak RSS and store size of `satcli analyze` against plain inference.

    python benchmarks/transformer_scale.py                         # GPT-2-small shape, 512 texts, mean pooling
    python benchmarks/transformer_scale.py --texts 128 -- --sequence-method tokens --memory-budget 600MB
    python benchmarks/transformer_scale.py --shape qwen-0.5b --texts 64
    python benchmarks/transformer_scale.py --width 2048 --blocks 4   # one wider model (transformer_growth.py: series)
    python benchmarks/transformer_scale.py --gpu                   # the same runs again with --device cuda, if any

Builds a GPT-2-shaped model from a config (random init, `save_pretrained`, offline), a word-level tokenizer and
N jsonl texts of W words in a temporary folder, then runs, each in a fresh subprocess so peak RSS is its own:
plain inference (`AutoModel`, batches of 32, no_grad, the same tokenizer and padding) and `satcli analyze` with
the arguments after `--`, both on `--device`. Prints a table (see `print_table`). Nothing asserts a time: the
figures go to benchmarks/README.md. benchmarks/transformer_growth.py reuses these functions for its series.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _harness import busy_cpus

SHAPES = {
    # name: (blocks, width, heads, mlp width): GPT-2 small, and a 0.5B-class decoder's proportions (Qwen2-0.5B:
    # 24 blocks, width 896, 14 heads, MLP 4,864), built as a GPT-2 model (fused QKV, one MLP input matrix).
    "gpt2": (12, 768, 12, 3072),
    "qwen-0.5b": (24, 896, 14, 4864),
}
WORDS = [f"w{i}" for i in range(2000)]
NO_GPU = "GPU: not available on this machine (torch.cuda.is_available() is False)"

# The peak CUDA memory of a process, on stderr, when it used CUDA (nothing on the CPU).
CUDA_PEAK = """
def _cuda_peak():
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.synchronize()
        print("CUDA_PEAK", torch.cuda.max_memory_allocated(), file=sys.stderr)
"""

PLAIN = (
    "import json, sys, torch\n"
    + CUDA_PEAK
    + r"""
from transformers import AutoModel, AutoTokenizer
folder, texts_file, batch, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModel.from_pretrained(folder).eval().to(device)
texts = [json.loads(line)["text"] for line in open(texts_file)]
with torch.no_grad():
    for i in range(0, len(texts), batch):
        enc = tok(texts[i:i + batch], padding=True, return_tensors="pt").to(device)
        model(**enc)
_cuda_peak()
"""
)

# `satcli ...` in this process (not `-m satcli`) so that its CUDA peak can be reported after it; `entry`, as the
# installed command runs it.
SATCLI = (
    "import sys\n"
    + CUDA_PEAK
    + """
sys.argv[0] = "satcli"
from satcli.cli.main import entry
try:
    entry()
finally:
    _cuda_peak()
"""
)

WRAP = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(done.returncode)"
)


@dataclass(frozen=True)
class Shape:
    """A GPT-2-shaped decoder: blocks, width (n_embd), attention heads, MLP width (n_inner)."""

    blocks: int
    width: int
    heads: int
    mlp: int

    def describe(self) -> str:
        return f"{self.blocks} block(s), width {self.width}, {self.heads} heads, MLP {self.mlp}"


def shape_of(name: str, blocks: int | None = None, width: int | None = None, mlp: int | None = None) -> Shape:
    """A named shape; a given width brings 64-wide heads and (unless `mlp` is given) a 4 x width MLP."""
    b, w, h, m = SHAPES[name]
    if width:
        w, h, m = width, max(1, width // 64), 4 * width
    return Shape(blocks or b, w, h, mlp or m)


def build(folder: Path, shape: Shape, texts: int, words: int) -> Path:
    """The model folder (config + weights + tokenizer) and a jsonl file of texts; returns the texts file.

    Every text has exactly `words` words, each one token of the word-level tokenizer (no special tokens
    added), so a batch needs no padding and the run sees texts x words tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[EOS]", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]", model_max_length=1024
    )
    config = GPT2Config(
        vocab_size=len(vocab),
        n_positions=max(128, words + 8),
        n_embd=shape.width,
        n_layer=shape.blocks,
        n_head=shape.heads,
        n_inner=shape.mlp,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=2,
    )
    import torch

    torch.manual_seed(0)
    GPT2Model(config).save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    rng = random.Random(0)
    target = folder / "texts.jsonl"
    with target.open("w", encoding="utf-8") as out:
        for i in range(texts):
            out.write(json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(words)), "label": i % 4}) + "\n")
    return target


@dataclass(frozen=True)
class Run:
    """One measured subprocess: wall seconds, peak RSS and peak CUDA memory (MiB, None off CUDA), its output."""

    wall: float
    rss: float
    cuda: float | None
    stdout: str
    stderr: str


def measured(command: list[str]) -> Run:
    """Run `command` in a wrapper process that reports its only child's peak RSS; fail loudly if it fails."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAP, *command], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    marks = ("PEAK ", "CUDA_PEAK ")
    found = {line.split()[0]: int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith(marks)}
    cuda = found["CUDA_PEAK"] / 2**20 if "CUDA_PEAK" in found else None
    return Run(wall, found["PEAK"] / 1024, cuda, done.stdout, done.stderr)


@dataclass(frozen=True)
class Case:
    """Plain inference and `satcli analyze` on one model and data set, and what satcli reported."""

    label: str
    device: str
    tokens: int
    plain: Run
    satcli: Run
    store: int  # bytes of the HDF5 store
    moments: int  # 8 d^2 bytes summed over the layers satcli's JSON lists (one float64 d x d matrix each)
    passes: int  # passes over the data the memory budget needed (satcli's "memory:" line; none: 1)
    load: float  # CPUs other processes kept busy just before the satcli run


def moments_bytes(report: str) -> int:
    """Bytes of one float64 d x d moment per tracked layer, from the widths in `satcli analyze -f json`."""
    return sum(8 * layer["width"] ** 2 for layer in json.loads(report)["layers"])


def passes_of(stderr: str) -> int:
    """The passes satcli's stderr line "memory: N passes over the data ..." names; 1 without that line."""
    for line in stderr.splitlines():
        if line.startswith("memory: ") and "passes over the data" in line:
            return int(line.split()[1])
    return 1


def run_case(
    model: Path, texts: Path, label: str, tokens: int, device: str, batch: int, extra: list[str], settle: float = 2.0
) -> Case:
    """Plain inference, then `satcli analyze` (JSON on stdout, store next to the model), each in a fresh process;
    `settle`: seconds to wait (and measure the other processes' load) before each."""
    busy_cpus(settle)
    plain = measured([sys.executable, "-c", PLAIN, str(model), str(texts), str(batch), device])
    store = model.parent / f"bench-{device}.satcli.h5"
    options = ["--data", str(texts), "--store", str(store), "--batch-size", str(batch), "--device", device]
    load = busy_cpus(settle)
    satcli = measured([sys.executable, "-c", SATCLI, "analyze", str(model), *options, "-f", "json", "--force", *extra])
    size = store.stat().st_size if store.exists() else 0
    return Case(
        label, device, tokens, plain, satcli, size, moments_bytes(satcli.stdout), passes_of(satcli.stderr), load
    )


def devices(device: str, gpu: bool) -> list[str]:
    """The devices to run on: `device`, and with `gpu` also cuda; prints NO_GPU when CUDA is missing."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {device}: {NO_GPU}", file=sys.stderr)
        raise SystemExit(2)
    if not gpu or device.startswith("cuda"):
        return [device]
    if not torch.cuda.is_available():
        print(NO_GPU)
        return [device]
    return [device, "cuda"]


COLUMNS = (
    ("case", 14, "{c.label}"),
    ("device", 6, "{c.device}"),
    ("tokens", 8, "{c.tokens}"),
    ("plain s", 8, "{c.plain.wall:.1f}"),
    ("satcli s", 8, "{c.satcli.wall:.1f}"),
    ("ratio", 6, "{ratio:.2f}x"),
    ("plain RSS", 9, "{c.plain.rss:.0f}"),
    ("satcli RSS", 10, "{c.satcli.rss:.0f}"),
    ("above plain", 11, "{above:.0f}"),
    ("moments", 8, "{moments:.1f}"),
    ("passes", 6, "{c.passes}"),
    ("store", 7, "{store:.1f}"),
    ("GPU peak", 11, "{gpu}"),
    ("load", 4, "{c.load:.2f}"),
)


def print_table(title: str, cases: list[Case]) -> None:
    """One row per case and device; times in s, memory and store in MiB."""
    print(title)
    print("  ".join(f"{name:>{width}}" for name, width, _ in COLUMNS))
    for c in cases:
        gpu = "-" if c.plain.cuda is None else f"{c.plain.cuda:.0f}/{c.satcli.cuda or 0:.0f}"
        values = {
            "c": c,
            "ratio": c.satcli.wall / c.plain.wall,
            "above": c.satcli.rss - c.plain.rss,
            "moments": c.moments / 2**20,
            "store": c.store / 2**20,
            "gpu": gpu,
        }
        print("  ".join(f"{form.format(**values):>{width}}" for _, width, form in COLUMNS))
    print(
        "plain / satcli s: wall seconds of each process (start-up included); RSS, above plain, moments, store: MiB;"
        " moments = 8 d^2 bytes summed over the layers in satcli's JSON (one float64 d x d matrix each);"
        " GPU peak: torch.cuda.max_memory_allocated of plain / satcli (MiB); load: CPUs busy elsewhere before"
        " the satcli run"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="gpt2")
    parser.add_argument("--blocks", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--mlp", type=int, help="MLP width [default: the shape's, or 4 x --width]")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--words", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="where plain inference and satcli run: cpu | cuda[:N]")
    parser.add_argument("--gpu", action="store_true", help="also run on cuda when there is one")
    parser.add_argument("--keep", type=Path, help="build the fixture here and keep it")
    parser.add_argument("satcli_args", nargs="*", help="extra `satcli analyze` arguments (after --)")
    args = parser.parse_args()
    shape = shape_of(args.shape, args.blocks, args.width, args.mlp)
    where = devices(args.device, args.gpu)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        texts = build(folder, shape, args.texts, args.words)
        label = f"{args.shape}" if not (args.blocks or args.width or args.mlp) else "custom"
        tokens = args.texts * args.words
        cases = [run_case(folder / "model", texts, label, tokens, d, args.batch_size, args.satcli_args) for d in where]
    title = f"{shape.describe()}; {args.texts} texts x {args.words} words;"
    print_table(f"{title} satcli args: {' '.join(args.satcli_args) or '(defaults)'}", cases)


if __name__ == "__main__":
    main()
