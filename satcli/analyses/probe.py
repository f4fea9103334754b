"""Linear probes per layer (docs/method.md sec. 9): a ridge probe fitted from the saturation moments and the
per-class sums the classes analysis keeps (no copy of its own), evaluated on labelled data in the engine's
evaluation pass; reports each layer's accuracy and its gain over the previous layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from satcli.analyses.base import Column, LayerAnalysis, entry_of, number_cell, percent_cell
from satcli.core.probe import DEFAULT_RIDGE, fit_probe, fit_problem, gains
from satcli.core.state import CheckpointState, ClassStats, LayerStats
from satcli.taps.layers import Layer


@dataclass(frozen=True)
class ProbeOptions:
    """`ridge`: the ridge alpha in units of the layer's mean variance, alpha = ridge * tr(Sigma) / d."""

    ridge: float = DEFAULT_RIDGE

    def __post_init__(self) -> None:
        if not self.ridge > 0:
            raise ValueError(f"ridge must be positive, got {self.ridge}")


@dataclass
class _Probe:
    """One layer's fitted probe on the device (None when it cannot be fitted) and its evaluation counts."""

    weight: torch.Tensor | None
    bias: torch.Tensor | None
    labels: torch.Tensor | None
    n_fit: int
    correct: torch.Tensor
    evaluated: torch.Tensor


class ProbeAnalysis(LayerAnalysis):
    """Fits W, b per layer after the fit pass (from `classes` and the moments) and counts correct eval samples."""

    name = "probe"
    Options = ProbeOptions
    requires = ("classes",)
    eval_pass = True
    # Its ridge system joins M2 with the classes analysis' sums of the float32 outputs: with M2 from the
    # layer's input (exact x W + b) their null spaces differ by the forward pass's rounding, which a small
    # ridge turns into 1e-4 relative changes of the weights (docs/method.md sec. 9).
    output_moments = True
    keys = ("probe",)
    columns = (
        Column("probe", "probe", lambda entry: percent_cell(entry_of(entry, "probe").get("accuracy")), True),
        Column("gain", "probe", lambda entry: number_cell(entry_of(entry, "probe").get("gain"), "+.1%")),
    )
    summary = "linear-probe accuracy per layer on --eval-data (docs/method.md sec. 9) and its gain over the previous"

    def __init__(self, options: ProbeOptions | None = None, device: torch.device | str | None = None) -> None:
        super().__init__(options, device)
        self.layers: dict[str, _Probe] = {}
        self.merged: dict[str, dict[str, object]] = {}

    def update(
        self, layer: Layer, samples: torch.Tensor, labels: torch.Tensor | None, index: torch.Tensor | None = None
    ) -> None:
        return None  # the fit reads the classes analysis' sums and the saturation moments

    def prepare(self, state: CheckpointState) -> None:
        ridge = float(self.options.ridge)
        for layer in state.layers:
            classes = layer.extras.get("classes")
            classes = classes if isinstance(classes, ClassStats) else None
            n_fit = 0 if classes is None else int(np.sum(classes.counts))
            zero = torch.zeros((), dtype=torch.int64, device=self.device)
            probe = _Probe(None, None, None, n_fit, zero, zero.clone())
            if classes is not None and fit_problem(layer.stats, classes) is None:
                fit = fit_probe(layer.stats, classes, ridge)
                as_tensor = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
                probe.weight, probe.bias, probe.labels = map(as_tensor, (fit.weight, fit.bias, fit.labels))
            self.layers[layer.meta.name] = probe

    def evaluate(self, layer: Layer, samples: torch.Tensor, labels: torch.Tensor | None) -> None:
        probe = self.layers.get(layer.name)
        if probe is None or labels is None or probe.weight is None:
            return
        rows = samples.detach().reshape(-1, samples.shape[-1]).to(self.device, torch.float64)
        y = labels.reshape(-1).to(self.device)
        known = y >= 0
        rows, y = rows[known], y[known]
        predicted = probe.labels[torch.argmax(rows @ probe.weight + probe.bias, dim=1)]  # type: ignore[index, operator]
        probe.correct += (predicted == y).sum()
        probe.evaluated += y.shape[0]

    def state(self) -> dict[str, object]:
        ridge = float(self.options.ridge)
        out: dict[str, object] = dict(self.merged)
        for name, probe in self.layers.items():
            counts = {"correct": int(probe.correct), "evaluated": int(probe.evaluated)}
            out[name] = {"ridge": ridge, "n_fit": probe.n_fit, **counts}
        return out

    def merge(self, other: Mapping[str, object]) -> None:
        for name, element in other.items():
            assert isinstance(element, Mapping)
            mine = self.merged.get(name)
            # Each part counted its eval samples with the probe of its own fit: no count belongs to the merged fit.
            self.merged[name] = dict(element) if mine is None else {**mine, "n_fit": -1, "correct": 0, "evaluated": 0}
            self.options = ProbeOptions(float(element.get("ridge", self.options.ridge)))  # type: ignore[arg-type]

    def reset(self) -> None:
        self.layers.clear()
        self.merged.clear()

    @staticmethod
    def score(stats: LayerStats, element: object, required: Mapping[str, object]) -> Mapping[str, object] | None:
        assert isinstance(element, Mapping)
        classes = required.get("classes")
        classes = classes if isinstance(classes, ClassStats) else None
        n_fit = 0 if classes is None else int(np.sum(classes.counts))
        evaluated, correct = int(element["evaluated"]), int(element["correct"])  # type: ignore[call-overload]
        problem = fit_problem(stats, classes)
        if problem is None and int(element["n_fit"]) != n_fit:  # type: ignore[call-overload]
            problem = "its parts evaluated their own fits; `satcli probe --fit-store` evaluates the merged one"
        if problem is None and evaluated == 0:
            problem = "no evaluation samples"
        entry: dict[str, object] = {
            "accuracy": None if problem else correct / evaluated,
            "gain": None,
            "ridge": float(element.get("ridge", DEFAULT_RIDGE)),  # type: ignore[arg-type]
            "n_fit": n_fit,
            "n_eval": evaluated,
        }
        return {"probe": {**entry, **({"note": problem} if problem else {})}}

    @staticmethod
    def across(entries: Sequence[Mapping[str, object]]) -> list[Mapping[str, object]] | None:
        probes = [entry_of(entry, "probe") for entry in entries]
        accuracies = [probe.get("accuracy") for probe in probes]
        steps = gains([a if isinstance(a, float) else None for a in accuracies])
        return [{"probe": {**probe, "gain": gain}} if probe else {} for probe, gain in zip(probes, steps, strict=True)]
