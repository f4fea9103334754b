"""Linear CKA between layers (docs/method.md, "Representation similarity (CKA)"): every pair of one model's
tracked layers, or every layer of one model against every layer of another on the same inputs.

Each batch runs through the model(s); every tracked output becomes one row per input (pooled as in `analyze`:
the mean over positions or real tokens when the reduction gives several samples per input). Per layer a float64
`Side` (d x d), per pair a float64 `Cross` (d1 x d2) is streamed (core/cka.py). Pairs that do not fit the
memory budget together are spread over several passes over the data; the sides are kept from the first pass.
An input whose row in any tapped layer holds NaN or inf is left out of every sum (and counted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from satcli.core.cka import Cross, ShiftedRows, Side, add_cross, add_rows, linear_cka, self_cross
from satcli.core.similarity import OnPass, PairCKA, PassSums, SimilarityReport, SumsHeader, format_size
from satcli.data import DataSource
from satcli.engine.run import on_device
from satcli.errors import SatcliError
from satcli.models import LoadedModel
from satcli.taps import Layer, Reduction, input_rows, open_taps, sample_view

FLOAT64 = 8


@dataclass(frozen=True)
class SimilarityOptions:
    """Which layers are compared, how outputs become rows, the debiased form, and the memory for the sums."""

    reduction: Reduction = field(default_factory=Reduction)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    debiased: bool = False
    memory_budget: int = 1 << 30


Progress = Callable[[int, int], None]  # (pass number from 1, inputs in the batch)


def fan_out(*consumers: OnPass | None) -> OnPass:
    """One consumer handing each finished pass to every given one (None: left out), in order."""
    chosen = [c for c in consumers if c is not None]

    def on_pass(header: SumsHeader, sums: PassSums) -> None:
        for consumer in chosen:
            consumer(header, sums)

    return on_pass


def pair_cka(header: SumsHeader, sums: PassSums, debiased: bool) -> list[PairCKA]:
    """The CKA of each pair of a finished pass."""
    out = []
    for pair in sums.pairs:
        kx, ky = header.side_keys(pair)
        x, y = sums.sides[kx], sums.sides[ky]
        cross = sums.crosses[pair] if pair in sums.crosses else self_cross(x)
        value = linear_cka(x, y, cross)
        out.append(PairCKA(pair[0], pair[1], value, linear_cka(x, y, cross, True) if debiased else None, x.n))
    return out


class ReportBuilder:
    """Turns finished passes into a SimilarityReport (the cross sums are dropped once their CKA is taken)."""

    def __init__(self, debiased: bool, budget: int) -> None:
        self.debiased, self.budget = debiased, budget
        self.header: SumsHeader | None = None
        self.last: PassSums | None = None
        self.pairs: list[PairCKA] = []

    def __call__(self, header: SumsHeader, sums: PassSums) -> None:
        self.header, self.last = header, sums
        self.pairs += pair_cka(header, sums, self.debiased)

    def report(self) -> SimilarityReport:
        header, last = self.header, self.last
        assert header is not None and last is not None
        return SimilarityReport(
            models=header.models,
            data=header.data,
            layers_a=header.layers_a,
            layers_b=header.layers_b,
            widths_a=header.widths_a,
            widths_b=header.widths_b,
            pairs=tuple(self.pairs),
            inputs=last.inputs,
            skipped=last.skipped,
            passes=last.passes,
            held_bytes=last.held,
            budget=self.budget,
            debiased=self.debiased,
        )


@dataclass
class _Tapped:
    """One model's per-input rows of the current batch, by layer, in forward order."""

    layers: dict[str, Layer] = field(default_factory=dict)
    calls: dict[str, list[torch.Tensor]] = field(default_factory=dict)


def similarity(
    model_a: LoadedModel,
    model_b: LoadedModel | None,
    data: DataSource,
    options: SimilarityOptions,
    progress: Progress | None = None,
) -> SimilarityReport:
    """CKA of every planned layer pair over the whole data set, in as many passes as the budget needs."""
    build = ReportBuilder(options.debiased, options.memory_budget)
    stream_sums(model_a, model_b, data, options, build, progress)
    return build.report()


def stream_sums(
    model_a: LoadedModel,
    model_b: LoadedModel | None,
    data: DataSource,
    options: SimilarityOptions,
    on_pass: OnPass,
    progress: Progress | None = None,
) -> None:
    """Stream every planned pair's float64 sums over the data, handing each finished pass to `on_pass`."""
    models = [model_a] if model_b is None else [model_a, model_b]
    last = len(models) - 1
    sides: dict[tuple[int, str], Side] = {}
    plan: _Plan | None = None
    header: SumsHeader | None = None
    inputs = skipped = 0
    number = 0
    while plan is None or number < len(plan.groups):
        number += 1
        crosses: dict[tuple[str, str], Cross] = {}
        for raw in _batches(models, data, options):
            if plan is None:
                header = _header(models, data, options, raw)
                plan = _plan([list(header.layers_a), list(header.layers_b)][: last + 1], _widths(raw), options)
            count = len(next(iter(raw[0].values())))
            rows, dropped = _finite(raw)
            if number == 1:
                inputs += count - dropped
                skipped += dropped
            shifted = _add_sides(sides, rows) if number == 1 else _shift_only(sides, rows)
            for a, b in plan.groups[number - 1]:
                if last or a != b:  # a layer with itself needs its side only
                    crosses[(a, b)] = add_cross(crosses.get((a, b)), shifted[(0, a)], shifted[(last, b)])
            if progress is not None:
                progress(number, count)
        if plan is None or header is None:
            raise SatcliError(f"the data set {data.description} gave no samples")
        group = tuple(plan.groups[number - 1])
        on_pass(header, PassSums(number, len(plan.groups), group, sides, crosses, inputs, skipped, plan.held))


def _header(
    models: Sequence[LoadedModel], data: DataSource, options: SimilarityOptions, raw: list[dict[str, torch.Tensor]]
) -> SumsHeader:
    names = [tuple(r) for r in raw]
    widths = [tuple(int(t.shape[1]) for t in r.values()) for r in raw]
    return SumsHeader(
        models=tuple(str(m.path) for m in models),
        sha256=tuple(str(m.sha256) for m in models),
        data=data.description,
        layers_a=names[0],
        layers_b=names[-1],
        widths_a=widths[0],
        widths_b=widths[-1],
        reduction=f"{options.reduction.conv_method}/{options.reduction.sequence_method}",
    )


def _widths(raw: list[dict[str, torch.Tensor]]) -> list[dict[str, int]]:
    return [{n: int(t.shape[1]) for n, t in r.items()} for r in raw]


def _batches(
    models: Sequence[LoadedModel], data: DataSource, options: SimilarityOptions
) -> Iterator[list[dict[str, torch.Tensor]]]:
    """Yield, per batch, each model's {layer: (B, d) float64 CPU rows} in forward order."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        taps = [stack.enter_context(open_taps(m.module, options.include, options.exclude)) for m in models]
        for raw in data.iter_batches():
            per_model = []
            for model, tap in zip(models, taps, strict=True):
                batch = on_device(raw, model.device)
                seen = _Tapped()

                def sink(layer: Layer, out: torch.Tensor, seen: _Tapped = seen, mask: object = batch.mask) -> None:
                    samples = sample_view(out, layer, options.reduction, mask)  # type: ignore[arg-type]
                    rows = input_rows(out, samples, layer, mask)  # type: ignore[arg-type]
                    seen.layers.setdefault(layer.name, layer)
                    seen.calls.setdefault(layer.name, []).append(rows.detach().to("cpu", torch.float64))

                with torch.inference_mode():
                    tap.stream(batch.inputs, sink)
                per_model.append({n: _mean(c) for n, c in seen.calls.items()})
            yield per_model


def _mean(calls: list[torch.Tensor]) -> torch.Tensor:
    """A layer called several times in one forward pass: the mean of its calls, as the store keeps it."""
    return calls[0] if len(calls) == 1 else torch.stack(calls).mean(dim=0)


def _finite(rows: list[dict[str, torch.Tensor]]) -> tuple[list[dict[str, np.ndarray]], int]:
    """Every model's rows as numpy without the inputs that are non-finite in any layer; and how many those are."""
    keep: torch.Tensor | None = None
    for per_model in rows:
        for t in per_model.values():
            ok = torch.isfinite(t).all(dim=1)
            keep = ok if keep is None else keep & ok
    if keep is None or bool(keep.all()):
        return [{n: t.numpy() for n, t in r.items()} for r in rows], 0
    return [{n: t[keep].numpy() for n, t in r.items()} for r in rows], int((~keep).sum())


def _add_sides(
    sides: dict[tuple[int, str], Side], rows: list[dict[str, np.ndarray]]
) -> dict[tuple[int, str], ShiftedRows]:
    shifted = {}
    for m, per_model in enumerate(rows):
        for name, x in per_model.items():
            sides[(m, name)], shifted[(m, name)] = add_rows(sides.get((m, name)), x)
    return shifted


def _shift_only(
    sides: dict[tuple[int, str], Side], rows: list[dict[str, np.ndarray]]
) -> dict[tuple[int, str], ShiftedRows]:
    """A later pass: the rows around the sides' shifts (the sides are complete already)."""
    shifted = {}
    for m, per_model in enumerate(rows):
        for name, x in per_model.items():
            u = x - sides[(m, name)].shift
            shifted[(m, name)] = ShiftedRows(u, np.einsum("ij,ij->i", u, u))
    return shifted


@dataclass(frozen=True)
class _Plan:
    """The pairs of each pass, and the float64 bytes held at most (every side and the largest pass's blocks)."""

    groups: list[list[tuple[str, str]]]
    held: int


def _plan(names: list[list[str]], widths: list[dict[str, int]], options: SimilarityOptions) -> _Plan:
    """The layer pairs, packed in order into passes whose cross blocks fit the budget next to the sides."""
    if len(names) == 1:
        pairs = [(a, b) for i, a in enumerate(names[0]) for b in names[0][i:]]
        cost = {(a, b): 0 if a == b else widths[0][a] * widths[0][b] * FLOAT64 for a, b in pairs}
    else:
        pairs = [(a, b) for a in names[0] for b in names[1]]
        cost = {(a, b): widths[0][a] * widths[1][b] * FLOAT64 for a, b in pairs}
    fixed = sum(_side_bytes(d) for per_model in widths for d in per_model.values())
    room = options.memory_budget - fixed
    largest = max(cost.values(), default=0)
    if room < largest:
        raise SatcliError(
            f"the memory budget {format_size(options.memory_budget)} is too small: the layers' own sums take "
            f"{format_size(fixed)} and the largest pair {format_size(largest)}; raise --memory-budget to at least "
            f"{format_size(fixed + largest)} or choose fewer layers with --layers/--exclude"
        )
    groups: list[list[tuple[str, str]]] = [[]]
    used = 0
    for pair in pairs:
        if groups[-1] and used + cost[pair] > room:
            groups.append([])
            used = 0
        groups[-1].append(pair)
        used += cost[pair]
    return _Plan(groups, fixed + max(sum(cost[p] for p in g) for g in groups))


def _side_bytes(d: int) -> int:
    return (d * d + 3 * d + 3) * FLOAT64
