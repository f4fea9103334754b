"""How `satcli analyze` grows against plain inference: a width series and a token series of GPT-2-shaped models.

    python benchmarks/transformer_growth.py                     # both series, CPU
    python benchmarks/transformer_growth.py --series width      # widths 768, 2048, 4096 at 10,000 tokens
    python benchmarks/transformer_growth.py --series tokens     # 10^3, 10^4, 10^5 tokens at width 768
    python benchmarks/transformer_growth.py --gpu               # each case again with --device cuda, if any
    python benchmarks/transformer_growth.py --tiny              # smoke test: two tiny cases, seconds each

Every case builds its model and texts with transformer_scale.build and times plain inference and
`satcli analyze --sequence-method tokens` with transformer_scale.run_case (fresh processes, peak RSS each),
then prints one table per series. Tokens = texts x words: every text has `--words` words, one token each.

Shape of the series (so that every case stays within a few minutes on 2 CPU cores): 1 block, MLP = width,
64-wide heads. A GPT-2 block's fused QKV layer (c_attn) is 3 x width wide: at width 4096 one 12,288-wide
float64 moment (1.1 GiB) and its eigendecomposition dominate the run; a 4 x width MLP would add a 16,384-wide
one (2 GiB). `--blocks` and `--mlp-ratio` change the shape; arguments after `--` go to `satcli analyze`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from transformer_scale import Case, Shape, build, devices, print_table, run_case

TINY = {"widths": [32], "tokens": [200], "width_tokens": 100, "token_width": 32, "words": 20}


def cases_of(args: argparse.Namespace) -> list[tuple[str, str, Shape, int]]:
    """(series, label, shape, tokens) of every case the arguments ask for, in order."""

    def shape(width: int) -> Shape:
        return Shape(args.blocks, width, max(1, width // 64), max(1, round(args.mlp_ratio * width)))

    found = []
    if args.series in ("width", "both"):
        found += [("width", f"width {w}", shape(w), args.width_tokens) for w in args.widths]
    if args.series in ("tokens", "both"):
        found += [("tokens", f"tokens {n}", shape(args.token_width), n) for n in args.tokens]
    return found


def title(series: str, args: argparse.Namespace) -> str:
    """The header of one series' table: what varies, what is fixed, how the shape was chosen."""
    fixed = f"{args.blocks} block(s), MLP = {args.mlp_ratio:g} x width, 64-wide heads, {args.words} words a text"
    extra = " ".join(["--sequence-method tokens", *args.satcli_args])
    if series == "width":
        return f"width series at {args.width_tokens} tokens; {fixed}; satcli analyze {extra}"
    return f"token series at width {args.token_width}; {fixed}; satcli analyze {extra}"


def parse() -> argparse.Namespace:
    """The command line; --tiny fills in tiny defaults for every size not given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", choices=["width", "tokens", "both"], default="both")
    parser.add_argument("--widths", type=lambda s: [int(v) for v in s.split(",")], help="[default: 768,2048,4096]")
    parser.add_argument("--tokens", type=lambda s: [int(v) for v in s.split(",")], help="[default: 1000,10000,100000]")
    parser.add_argument("--width-tokens", type=int, help="tokens of the width series [default: 10000]")
    parser.add_argument("--token-width", type=int, help="width of the token series [default: 768]")
    parser.add_argument("--words", type=int, help="words (= tokens) a text [default: 100]")
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--mlp-ratio", type=float, default=1.0, help="MLP width / width [default: 1]")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="where plain inference and satcli run: cpu | cuda[:N]")
    parser.add_argument("--gpu", action="store_true", help="also run every case on cuda when there is one")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke test in seconds)")
    parser.add_argument("satcli_args", nargs="*", help="extra `satcli analyze` arguments (after --)")
    args = parser.parse_args()
    full = {"widths": [768, 2048, 4096], "tokens": [1000, 10000, 100000], "width_tokens": 10000}
    full |= {"token_width": 768, "words": 100}
    for key, value in (TINY if args.tiny else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main() -> None:
    args = parse()
    where = devices(args.device, args.gpu)
    extra = ["--sequence-method", "tokens", *args.satcli_args]
    settle = 0.2 if args.tiny else 2.0
    planned = cases_of(args)
    for series in ("width", "tokens"):
        cases: list[Case] = []
        for _, label, shape, tokens in (item for item in planned if item[0] == series):
            texts = max(1, tokens // args.words)
            with tempfile.TemporaryDirectory() as tmp:
                data = build(Path(tmp), shape, texts, args.words)
                for device in where:
                    run = run_case(
                        Path(tmp) / "model", data, label, texts * args.words, device, args.batch_size, extra, settle
                    )
                    cases.append(run)
        if cases:
            print_table(title(series, args), cases)


if __name__ == "__main__":
    main()
