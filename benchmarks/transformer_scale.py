"""Transformer-scale runs: wall time, peak RSS and store size of `satcli analyze` against plain inference.

    python benchmarks/transformer_scale.py                         # GPT-2-small shape, 512 texts, mean pooling
    python benchmarks/transformer_scale.py --texts 128 -- --sequence-method tokens --memory-budget 600MB
    python benchmarks/transformer_scale.py --shape qwen-0.5b --texts 64
    python benchmarks/transformer_scale.py --width 2048 --blocks 4   # how it grows with width

Builds a GPT-2-shaped model from a config (random init, `save_pretrained`, offline), a word-level tokenizer and
N jsonl texts of W words in a temporary folder, then runs, each in a fresh subprocess so peak RSS is its own:
plain inference (`AutoModel`, batches of 32, no_grad, the same tokenizer and padding) and `satcli analyze` with
the arguments after `--`. Prints one line per run: wall seconds, peak RSS (MiB), store bytes. Nothing asserts a
time: the figures go to benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import busy_cpus

SHAPES = {
    # name: (blocks, width, heads, mlp width): GPT-2 small, and a 0.5B-class decoder's proportions.
    "gpt2": (12, 768, 12, 3072),
    "qwen-0.5b": (24, 896, 14, 4864),
}
WORDS = [f"w{i}" for i in range(2000)]

PLAIN = r"""
import json, sys, torch
from transformers import AutoModel, AutoTokenizer
folder, texts_file, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModel.from_pretrained(folder).eval()
texts = [json.loads(line)["text"] for line in open(texts_file)]
with torch.no_grad():
    for i in range(0, len(texts), batch):
        enc = tok(texts[i:i + batch], padding=True, return_tensors="pt")
        model(**enc)
"""


def build(folder: Path, blocks: int, width: int, heads: int, mlp: int, texts: int, words: int) -> Path:
    """The model folder (config + weights + tokenizer) and a jsonl file of texts; returns the texts file."""
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
        n_embd=width,
        n_layer=blocks,
        n_head=heads,
        n_inner=mlp,
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


WRAP = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(done.returncode)"
)


def measured(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one subprocess (a wrapper process reports its only child's peak)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAP, *command], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    peak = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK "))
    return wall, peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="gpt2")
    parser.add_argument("--blocks", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--words", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--keep", type=Path, help="build the fixture here and keep it")
    parser.add_argument("satcli_args", nargs="*", help="extra `satcli analyze` arguments (after --)")
    args = parser.parse_args()
    blocks, width, heads, mlp = SHAPES[args.shape]
    if args.width:
        width, heads, mlp = args.width, max(1, args.width // 64), 4 * args.width
    blocks = args.blocks or blocks
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        texts = build(folder, blocks, width, heads, mlp, args.texts, args.words)
        model = folder / "model"
        print(f"shape: {blocks} blocks, width {width}, mlp {mlp}; {args.texts} texts x {args.words} words")
        load = busy_cpus(2.0)
        wall, rss = measured([sys.executable, "-c", PLAIN, str(model), str(texts), str(args.batch_size)])
        print(f"plain inference   wall {wall:7.1f} s   peak RSS {rss:7.0f} MiB   (other load {load:.2f} CPUs)")
        store = folder / "bench.satcli.h5"
        command = [
            sys.executable,
            "-m",
            "satcli",
            "analyze",
            str(model),
            "--data",
            str(texts),
            "--store",
            str(store),
            "--batch-size",
            str(args.batch_size),
            "-q",
            "--force",
            *args.satcli_args,
        ]
        load = busy_cpus(2.0)
        wall_s, rss_s = measured(command)
        size = store.stat().st_size if store.exists() else 0
        print(
            f"satcli analyze    wall {wall_s:7.1f} s   peak RSS {rss_s:7.0f} MiB   store {size / 2**20:8.1f} MiB"
            f"   (other load {load:.2f} CPUs)"
        )
        print(f"ratio             wall {wall_s / wall:7.2f} x  args: {' '.join(args.satcli_args) or '(defaults)'}")


if __name__ == "__main__":
    main()
