"""Every command-line option defined once, shared by the commands that take it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from satcli.data import DataOptions


class OutputFormat(str, Enum):
    table = "table"
    jsonl = "jsonl"
    json = "json"  # one document: the checkpoint's object, or {"checkpoints": [...]} for several
    csv = "csv"


class ConvMethod(str, Enum):
    mean = "mean"
    max = "max"
    channelwise = "channelwise"


class SequenceMethod(str, Enum):
    mean = "mean"
    last = "last"
    tokens = "tokens"


class Precision(str, Enum):
    float64 = "float64"
    float32 = "float32"


class ActivationsDtype(str, Enum):
    float32 = "float32"
    float16 = "float16"


# Options shared by the commands that load a model and data.
Data = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="digits | digits:raw | cifar10 | cifar100 | mnist | fashion-mnist | svhn | folder:PATH | "
        "FILE.npz/.pt/.h5 | FILE.parquet/.jsonl/.csv | a save_to_disk folder | hf:NAME[:SPLIT]. `digits` is "
        "standardized, (x/16 - 0.305) / 0.376 (train-split mean and std); `digits:raw` is x/16 in [0, 1], as "
        "sklearn's load_digits().data / 16.",
    ),
]


DataRoot = Annotated[
    Path | None,
    typer.Option(help="Where torchvision data sets live [default: $SATCLI_DATA_ROOT or ~/.cache/satcli/data]."),
]


Download = Annotated[
    bool,
    typer.Option(
        "--download",
        help="Fetch what is missing: a torchvision data set, or a hf: model or data set from the Hugging Face hub "
        "(never otherwise).",
    ),
]


Split = Annotated[str, typer.Option(help="Data split: train | test (| extra for svhn, all for digits).")]


MaxSamples = Annotated[int | None, typer.Option(help="Use a fixed-seed random subset of this many inputs.")]


BatchSize = Annotated[int, typer.Option(help="Inputs per forward pass.")]


Workers = Annotated[int, typer.Option(help="DataLoader worker processes.")]


ImageSize = Annotated[int | None, typer.Option(help="Resize images to SIZE x SIZE before the model.")]


Seed = Annotated[int, typer.Option(help="Seed of the --max-samples subset.")]


Arch = Annotated[
    str | None,
    typer.Option(help="Architecture for state dicts: torchvision:NAME, timm:NAME or package.module:factory."),
]


ArchKwargs = Annotated[
    list[str] | None, typer.Option("--arch-kwargs", help="KEY=VALUE for --arch (repeatable, or comma-separated).")
]


TrustPickle = Annotated[
    bool, typer.Option("--trust-pickle", help="Allow loading a whole pickled nn.Module (runs code from the file).")
]


Device = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N (auto = CUDA when available).")]


Layers = Annotated[list[str] | None, typer.Option("--layers", help="Glob of layer names to track (repeatable).")]


Exclude = Annotated[list[str] | None, typer.Option("--exclude", help="Glob of layer names to leave out (repeatable).")]


# Options for tables and Hugging Face data (datasets folders, hf:NAME[:SPLIT], .parquet/.jsonl/.csv).
InputColumn = Annotated[
    str | None,
    typer.Option(
        help="Column fed to the model; two text columns as A,B make a text pair "
        "[default: the first of text, image, img, pixel_values, input_ids].",
        show_default=False,
    ),
]
LabelColumn = Annotated[
    str | None, typer.Option(help="Column of class labels [default: label or labels when present].")
]
Tokenizer = Annotated[
    str | None,
    typer.Option(
        metavar="PATH", help="Tokenizer folder or model directory for text data [default: the model directory's]."
    ),
]
MaxLength = Annotated[
    int | None, typer.Option(min=1, help="Tokens per text, longer texts are cut [default: the tokenizer's, <= 512].")
]
TrustRemoteCode = Annotated[
    bool,
    typer.Option("--trust-remote-code", help="Let a Hugging Face model or tokenizer run Python code shipped with it."),
]


@dataclass(frozen=True)
class TextOptions:
    """The table / Hugging Face data options of a command, passed on as one value."""

    input_column: str | None = None
    label_column: str | None = None
    tokenizer: str | None = None
    max_length: int | None = None
    trust_remote_code: bool = False


def data_options(
    data_root: Path | None,
    download: bool,
    split: str,
    max_samples: int | None,
    batch_size: int,
    workers: int,
    image_size: int | None,
    seed: int,
    *,
    grayscale_to_rgb: bool = False,
    text: TextOptions | None = None,
) -> DataOptions:
    """The data options of a command (imported here, not at start-up: --help must not pay for torch)."""
    from satcli.data import DataOptions

    text = text or TextOptions()
    return DataOptions(
        root=data_root,
        download=download,
        split=split,
        max_samples=max_samples,
        batch_size=batch_size,
        workers=workers,
        image_size=image_size,
        seed=seed,
        grayscale_to_rgb=grayscale_to_rgb,
        input_column=text.input_column,
        label_column=text.label_column,
        tokenizer=text.tokenizer,
        max_length=text.max_length,
        trust_remote_code=text.trust_remote_code,
    )


def with_model_preprocessors(options: DataOptions, model: str | Path) -> DataOptions:
    """The options with a Hugging Face model directory's tokenizer / image processor where none was given, and
    its vocabulary size (a tokenizer that does not fit it is refused)."""
    from satcli.models import config_vocab_size, model_preprocessors

    options = replace(options, vocab_size=config_vocab_size(model, download=options.download))
    if options.tokenizer is not None and options.image_processor is not None:
        return options
    tokenizer, processor = model_preprocessors(
        model, download=options.download, trust_remote_code=options.trust_remote_code
    )
    return replace(
        options,
        tokenizer=options.tokenizer if options.tokenizer is not None else tokenizer,
        image_processor=options.image_processor if options.image_processor is not None else processor,
    )


def eval_source(
    eval_data: str | None, eval_split: str | None, data: str, split: str | None, fit: DataOptions
) -> object:
    """The evaluation data of --eval-data / --eval-split (prepared like the fit data), or None when neither names
    other data than --data / --split."""
    from satcli.data import open_data

    if eval_data is None and (eval_split is None or eval_split == split):
        return None
    return open_data(eval_data or data, replace(fit, split=eval_split or split))


def arch_kwargs_dict(items: list[str] | None) -> dict[str, object]:
    """--arch-kwargs values (repeatable, or comma-separated) as a dict."""
    from satcli.models import parse_arch_kwargs

    parts = [p for item in items or [] for p in item.split(",") if p.strip()]
    return parse_arch_kwargs(parts)


class ReportFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    html = "html"  # one self-contained page (stdout or -o)
    parquet = "parquet"  # binary: only to a file (-o)


class CompareFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class CheckFormat(str, Enum):
    table = "table"
    json = "json"


class FailOn(str, Enum):
    overparameterized = "overparameterized"
    underparameterized = "underparameterized"
    any = "any"
    none = "none"


StoreRefs = Annotated[
    list[str],
    typer.Argument(
        help="Stores written by analyze; STORE.h5:NNNN selects one checkpoint group.",
        metavar="STORE",
        show_default=False,
    ),
]


CheckpointKeys = Annotated[
    list[str] | None,
    typer.Option("--checkpoint", "-c", metavar="NNNN", help="Only this checkpoint group of the store (repeatable)."),
]


# The verdict's thresholds, shared by analyze, check, report, compare and plot. Unset: the default for a
# model, the value stored with the checkpoint for a store.
UNSET_NOTE = "[default: {default}; for a store: as stored]"
Threshold = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        min=0.0,
        max=1.0,
        help="delta: share of variance the top-k directions explain. " + UNSET_NOTE.format(default=0.99),
    ),
]
TailThreshold = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="A layer below this saturation can be in the tail. " + UNSET_NOTE.format(default=0.2),
    ),
]
MaxTail = Annotated[
    int | None,
    typer.Option(min=0, help="Overparameterized when the tail is longer. " + UNSET_NOTE.format(default=2)),
]
UnderThreshold = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Underparameterized when the average is at least this. " + UNSET_NOTE.format(default=0.45),
    ),
]
ConvMethodOption = Annotated[ConvMethod, typer.Option(help="How a conv output becomes samples.")]
SequenceMethodOption = Annotated[SequenceMethod, typer.Option(help="How a (B, T, d) output becomes samples.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
SettleTolerance = Annotated[
    float,
    typer.Option(help="Trajectory summary: a layer has settled when its saturation moves less (in (0, 1])."),
]
SettleWindow = Annotated[
    int, typer.Option(min=1, help="Trajectory summary: settled only over at least this many consecutive moves.")
]
EarlyCheckpoints = Annotated[
    int,
    typer.Option(min=1, help="Trajectory summary: the early underparameterized flag looks at this many checkpoints."),
]
Shard = Annotated[
    str | None,
    typer.Option(
        help="Score only shard I of K of the data (I/K, from 0) into a partial store; join the parts with satcli merge."
    ),
]
SplitOption = Annotated[
    str,
    typer.Option(
        "--split-by",
        metavar="data|layers",
        help="With --shard or torchrun: give each process a share of the data (default) or a share of the "
        "layers over all the data (moment memory per process / K; docs/distributed.md).",
    ),
]
MemoryBudget = Annotated[
    str | None,
    typer.Option(
        "--memory-budget",
        metavar="SIZE",
        help="Memory the layers' moments may hold at once (600MB, 2GiB, 1.5G); layers that do not fit take "
        "more exact passes over the data [default: half the available memory].",
    ),
]
Classes = Annotated[
    bool | None,
    typer.Option(
        "--classes/--no-classes",
        show_default=False,
        help="Class/cross-class spectra per layer [default: on when the data carry labels].",
    ),
]
AnalysisSpecs = Annotated[
    list[str] | None,
    typer.Option(
        "--analysis",
        metavar="NAME[:OPT=V]",
        help="Run this analysis besides those on by default, with options (repeatable; satcli analyses lists them).",
    ),
]
WeightSpectra = Annotated[
    bool,
    typer.Option(
        "--weight-spectra",
        help="Add each layer's weight-spectrum alpha and stable rank (data-free; the same as --analysis weights).",
    ),
]
EvalData = Annotated[
    str | None,
    typer.Option(
        help="Labelled data to evaluate on (the linear probes, the projected models) [default: the --data set].",
        show_default=False,
    ),
]
ModelArgument = Annotated[
    Path,
    typer.Argument(
        help="Model file (.pt2, TorchScript, state dict .pt/.pth/.safetensors with --arch), a Hugging Face "
        "model directory, hf:PATH or hf:ORG/NAME (from the local Hugging Face cache)."
    ),
]
EvalSplit = Annotated[str | None, typer.Option(help="Split of --eval-data [default: --split].", show_default=False)]
Columns = Annotated[
    list[str] | None,
    typer.Option(
        "--columns",
        metavar="NAME",
        help="Add an analysis' optional table columns, by header or analysis name (repeatable; see satcli analyses).",
    ),
]
Wait = Annotated[
    bool,
    typer.Option("--wait", help="When another run is writing the same store, wait for it instead of failing."),
]
PrecisionOption = Annotated[
    Precision,
    typer.Option(
        help="Arithmetic of the covariance blocks (sums stay float64): float64 exact, float32 faster "
        "(error in docs/method.md sec. 1).",
    ),
]


class OnNonfinite(str, Enum):
    skip = "skip"
    fail = "fail"


OnNonfiniteOption = Annotated[
    OnNonfinite,
    typer.Option(
        "--on-nonfinite",
        help="skip: leave inputs (and layer samples) holding NaN or inf out of every statistic, counted on "
        "stderr and in the JSON; fail: stop with an error at the first one.",
    ),
]
AllowUndersampled = Annotated[
    bool,
    typer.Option(
        "--allow-undersampled",
        help="Gate an inconclusive (undersampled) verdict as if it were conclusive instead of exiting 2.",
    ),
]


GrayscaleToRgb = Annotated[
    bool,
    typer.Option("--grayscale-to-rgb", help="Repeat the channel of 1-channel images to 3, for models trained on RGB."),
]

AnalyzeFormat = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        help='table on the terminal; json (one document: the checkpoint\'s object, or {"checkpoints": [...]} '
        "for several), jsonl (one object per checkpoint and line, printed as each finishes) or csv (one row per "
        "checkpoint and layer) on stdout.",
    ),
]
Trajectory = Annotated[
    bool,
    typer.Option(
        "--trajectory",
        help="Print only a layers x checkpoints table of saturation (table format). Without it, several "
        "checkpoints get that table after their own tables.",
    ),
]
NoSort = Annotated[
    bool,
    typer.Option("--no-sort", help="Score in the order given, not in natural order (epoch_2 before epoch_10)."),
]

# --format of the other commands: one JSON object (project, svr, weights), stored checkpoints (report),
# a comparison (compare) and a CI gate (check).
ObjectFormat = Annotated[
    CheckFormat, typer.Option("--format", "-f", help="table on the terminal, or one JSON object on stdout.")
]
ReportFormatOption = Annotated[
    ReportFormat,
    typer.Option(
        "--format",
        "-f",
        help='table; json (one document: the checkpoint\'s object, or {"checkpoints": [...]} for several), '
        "jsonl (one object per checkpoint and line) or csv on stdout; html (a self-contained page with plots, stdout "
        "or -o) or parquet (one row per checkpoint and layer; needs -o).",
    ),
]
CompareFormatOption = Annotated[CompareFormat, typer.Option("--format", "-f", help="table, or json / csv on stdout.")]
CheckFormatOption = Annotated[
    CheckFormat, typer.Option("--format", "-f", help="table: a summary line; json: one result per line.")
]
