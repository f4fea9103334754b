"""satcli.engine.project against an independent reference: the models' layers called by hand, activations
collected without satcli, float64 numpy eigenspaces, projections and metrics (dense, conv per position, a
large-mean layer, per-token sequences with padding)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from satcli.core.projection import ProjectionReport
from satcli.data import Batch, DataOptions, DataSource, open_data
from satcli.engine.project import ProjectionOptions, project
from satcli.models import LoadedModel

Edit = Callable[[str, torch.Tensor], torch.Tensor]
DELTAS = (0.5, 0.9, 0.99)


class Dense(nn.Module):
    """Linear layers with a large-mean middle layer (bias 1e3, spread about 1)."""

    names = ("a", "big", "out")

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.a, self.big, self.out = nn.Linear(6, 8), nn.Linear(8, 7), nn.Linear(7, 3)
        with torch.no_grad():
            self.big.bias.fill_(1000.0)

    def forward(self, x: torch.Tensor, edit: Edit | None = None) -> torch.Tensor:
        e = edit or (lambda name, z: z)
        h = torch.relu(e("a", self.a(x)))
        h = torch.relu(e("big", self.big(h))) - 1000.0
        return e("out", self.out(h))


class Conv(nn.Module):
    names = ("c1", "c2", "fc")

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.c1, self.c2, self.fc = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 5, 3), nn.Linear(5, 3)

    def forward(self, x: torch.Tensor, edit: Edit | None = None) -> torch.Tensor:
        e = edit or (lambda name, z: z)
        h = torch.relu(e("c1", self.c1(x)))
        h = torch.relu(e("c2", self.c2(h))).mean(dim=(2, 3))
        return e("fc", self.fc(h))


class PlainConv(nn.Module):
    """Conv's layers and forward without the edit argument, so TorchScript can compile it."""

    def __init__(self, source: Conv) -> None:
        super().__init__()
        self.c1, self.c2, self.fc = source.c1, source.c2, source.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu_(self.c1(x))  # in place, as scripted models often are
        h = torch.relu(self.c2(h)).mean(dim=(2, 3))
        return self.fc(h)


class Tokens(nn.Module):
    """Token ids -> embedding -> Linear -> ReLU -> Linear, one output row per token (B, T, 4)."""

    names = ("proj", "head")

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.embed, self.proj, self.head = nn.Embedding(12, 6), nn.Linear(6, 5), nn.Linear(5, 4)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, edit: Edit | None = None) -> torch.Tensor:
        e = edit or (lambda name, z: z)
        h = torch.relu(e("proj", self.proj(self.embed(input_ids))))
        return e("head", self.head(h))


def channels_last(name: str, z: torch.Tensor) -> np.ndarray:
    """(samples, d) float64 rows of one output: every position of a conv output, as is otherwise."""
    t = z.detach().double()
    return (t.movedim(1, -1) if t.ndim == 4 else t).reshape(-1, t.shape[1 if t.ndim == 4 else -1]).numpy()


def reference_fit(run: Callable[[Edit], None], names: tuple[str, ...]) -> dict[str, tuple[np.ndarray, ...]]:
    """Per layer (mean, eigenvalues desc, eigenvectors) of the fit activations, two-pass float64 numpy."""
    rows: dict[str, list[np.ndarray]] = {name: [] for name in names}

    def record(name: str, z: torch.Tensor) -> torch.Tensor:
        rows[name].append(channels_last(name, z))
        return z

    run(record)
    fitted = {}
    for name in names:
        x = np.concatenate(rows[name])
        mean = x.mean(axis=0)
        values, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
        fitted[name] = (mean, values[::-1].clip(0), vectors[:, ::-1])
    return fitted


def reference_k(values: np.ndarray, delta: float) -> int:
    share = np.cumsum(values) / values.sum()
    return int(np.argmax(share >= delta * (1 - 1e-12))) + 1


def projection_edit(fitted: dict[str, tuple[np.ndarray, ...]], ks: dict[str, int]) -> Edit:
    def edit(name: str, z: torch.Tensor) -> torch.Tensor:
        if name not in ks:
            return z
        mean, _, vectors = fitted[name]
        p = vectors[:, : ks[name]] @ vectors[:, : ks[name]].T
        moved = (z.movedim(1, -1) if z.ndim == 4 else z).double().numpy()
        out = torch.from_numpy(mean + (moved - mean) @ p).float()
        return out.movedim(-1, 1) if z.ndim == 4 else out

    return edit


def check_against_reference(
    report: ProjectionReport,
    fitted: dict[str, tuple[np.ndarray, ...]],
    evaluate: Callable[[Edit | None], tuple[np.ndarray, np.ndarray | None]],
    names: tuple[str, ...],
) -> None:
    """Every result's k, accuracy and output change, and the pass count, against the reference."""
    base, labels = evaluate(None)
    base_acc = None if labels is None else float((base.argmax(axis=1) == labels).mean())
    assert report.base_accuracy == pytest.approx(base_acc, abs=1e-12)
    variants = set()
    for result in report.results:
        targets = [result.layer] if result.scope == "layer" else list(names[:-1])
        ks = {name: reference_k(fitted[name][1], result.delta) for name in targets}
        assert result.k == (ks[result.layer] if result.scope == "layer" else ks)
        active = {n: k for n, k in ks.items() if k < fitted[n][0].shape[0]}
        variants.add(tuple(sorted(active.items())))
        out, _ = evaluate(projection_edit(fitted, active))
        change = math.sqrt(((out - base) ** 2).sum()) / math.sqrt((base**2).sum())
        assert result.output_change == pytest.approx(change, rel=1e-5, abs=1e-9), result
        if labels is not None:
            assert result.accuracy == pytest.approx(float((out.argmax(axis=1) == labels).mean()), abs=1e-12)
    assert report.passes == 2 + len(variants - {()})
    assert {r.scope for r in report.results} == {"layer", "all"}
    assert [layer.name for layer in report.layers] == list(names)


def loaded(module: nn.Module) -> LoadedModel:
    return LoadedModel(Path("model.pt"), "", "module", module.eval(), torch.device("cpu"), None, None)  # type: ignore[arg-type]


def npz_source(path: Path, x: np.ndarray, y: np.ndarray, batch_size: int = 16) -> DataSource:
    np.savez(path, x=x.astype(np.float32), y=y)
    return open_data(str(path), DataOptions(batch_size=batch_size))


@pytest.mark.parametrize(
    ("model_class", "shape", "script"), [(Dense, (6,), False), (Conv, (2, 6, 5), False), (Conv, (2, 6, 5), True)]
)
def test_projection_matches_reference(
    model_class: type[nn.Module], shape: tuple[int, ...], script: bool, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    fit_x, eval_x = rng.normal(size=(120, *shape)), rng.normal(size=(50, *shape))
    eval_y = rng.integers(0, 3, size=50)
    fit = npz_source(tmp_path / "fit.npz", fit_x, rng.integers(0, 3, size=120), batch_size=32)
    evaluate = npz_source(tmp_path / "eval.npz", eval_x, eval_y, batch_size=16)
    model = model_class()
    run = torch.jit.script(PlainConv(model)) if script else model  # type: ignore[arg-type]
    report = project(loaded(run), fit, evaluate, ProjectionOptions(DELTAS))
    fit_t, eval_t = torch.from_numpy(fit_x).float(), torch.from_numpy(eval_x).float()

    def run_fit(edit: Edit) -> None:
        with torch.no_grad():
            model(fit_t, edit)

    def run_eval(edit: Edit | None) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            return model(eval_t, edit).double().numpy(), eval_y

    fitted = reference_fit(run_fit, model.names)
    check_against_reference(report, fitted, run_eval, model.names)
    assert report.fit_inputs == 120 and report.eval_inputs == 50
    assert report.layers[-1].output and not any(layer.output for layer in report.layers[:-1])


def token_rows() -> list[list[int]]:
    rng = np.random.default_rng(4)
    return [list(rng.integers(1, 12, size=int(n))) for n in rng.integers(2, 9, size=21)]


def pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right padding with token 0 (whose embedding is not zero, so counting padding would show)."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


def token_source(rows: list[list[int]]) -> DataSource:
    def collate(items: list[list[int]]) -> Batch:
        ids, mask = pad(items)
        return Batch({"input_ids": ids, "attention_mask": mask}, None, mask.bool())

    return DataSource(
        "tokens", "tokens", rows, len(rows), (8,), False, DataOptions(batch_size=5), collate, is_text=True
    )  # type: ignore[arg-type]


def test_token_sequences_fit_and_count_real_tokens_only() -> None:
    model = Tokens()
    rows = token_rows()
    report = project(loaded(model), token_source(rows), None, ProjectionOptions(DELTAS))
    batches = [rows[i : i + 5] for i in range(0, len(rows), 5)]

    def per_batch(edit: Edit | None) -> list[np.ndarray]:
        outs = []
        with torch.no_grad():
            for chunk in batches:
                ids, mask = pad(chunk)
                out = model(ids, mask, edit)
                outs.append(out[mask.bool()].double().numpy())
        return outs

    def run_fit(edit: Edit) -> None:
        def real_only(name: str, z: torch.Tensor) -> torch.Tensor:
            _, mask = pad(current[0])
            edit(name, z[mask.bool()])
            return z

        for chunk in batches:
            current[:] = [chunk]
            with torch.no_grad():
                model(*pad(chunk), real_only)

    current: list[list[list[int]]] = []
    fitted = reference_fit(run_fit, model.names)
    assert report.layers[0].samples == sum(len(r) for r in rows)

    def run_eval(edit: Edit | None) -> tuple[np.ndarray, None]:
        return np.concatenate(per_batch(edit)), None

    check_against_reference(report, fitted, run_eval, model.names)
    assert report.base_accuracy is None and all(r.accuracy is None for r in report.results)


def test_a_layer_selection_keeps_the_models_output_layer_out_of_all(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    data = npz_source(tmp_path / "d.npz", rng.normal(size=(40, 6)), rng.integers(0, 3, size=40))
    report = project(loaded(Dense()), data, None, ProjectionOptions((0.9,), include=("big", "out")))
    assert [(layer.name, layer.output) for layer in report.layers] == [("big", False), ("out", True)]
    everything = [r for r in report.results if r.scope == "all"]
    assert len(everything) == 1 and set(everything[0].k) == {"big"}  # type: ignore[arg-type]
    # A selection without the output layer: the fit pass still knows it, and no selected layer is taken for it.
    alone = project(loaded(Dense()), data, None, ProjectionOptions((0.9,), include=("big",)))
    assert [(layer.name, layer.output) for layer in alone.layers] == [("big", False)]
