"""Eigenspace projection (docs/method.md sec. 3; Richter et al., "Feature Space Saturation during Training"):
the projector of a layer's top-k eigenspace and the metrics that compare a projected model's outputs with
the unmodified model's.

Pure maths on float64: a projector is fitted from a layer's streaming moments (n, mean, M2) and acts on one
layer output with the channel vector on a given axis, every other index being one position or token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from satcli.core.spectral import score_layer
from satcli.errors import SatcliError

DEFAULT_DELTAS = (0.9, 0.99, 0.999)


def check_deltas(deltas: Sequence[float]) -> tuple[float, ...]:
    """The distinct deltas, ascending; every one must lie in (0, 1]."""
    if not deltas:
        raise SatcliError("the projection check needs at least one delta")
    for delta in deltas:
        if not (isinstance(delta, int | float) and 0.0 < float(delta) <= 1.0):
            raise SatcliError(f"delta must be in (0, 1], got {delta}")
    return tuple(sorted({float(d) for d in deltas}))


@dataclass(frozen=True)
class Eigenspace:
    """A layer's fitted covariance spectrum: mean, eigenvectors (columns, by descending eigenvalue) and the
    data it came from, enough to give the projector for any delta."""

    name: str
    type: str
    samples: int
    mean: np.ndarray
    eigenvalues: np.ndarray
    vectors: np.ndarray

    @property
    def width(self) -> int:
        """d, the layer's output width."""
        return int(self.mean.shape[0])

    def k(self, delta: float) -> int:
        """Dimension kept at `delta`: the same rule as `analyze` (docs/method.md sec. 1, dead and undersampled
        layers included)."""
        k = score_layer(self.name, self.type, self.samples, self.mean, self.eigenvalues, delta).k
        if k is None:
            raise SatcliError(f"layer '{self.name}' has {self.samples} fit samples; a projection needs at least 2")
        return k

    def projector(self, k: int) -> Projector:
        """The projector onto the top-k eigenspace, centred at the mean."""
        return Projector(self.mean, self.vectors[:, :k])


def fit_eigenspace(
    name: str,
    type_: str,
    samples: int,
    mean: np.ndarray,
    m2: np.ndarray,
    eigenvalues: np.ndarray | None = None,
    *,
    nonfinite: bool = False,
) -> Eigenspace:
    """Eigen-decompose a layer's covariance M2 / (n - 1) in float64 (``eigh``), eigenvalues descending and
    clipped at 0, and keep the eigenvectors for projectors of every k.

    `eigenvalues`: the run's own ``eigvalsh`` values, when known, so k is exactly the k `analyze` reports.
    `nonfinite`: the fit saw NaN/inf activations in this layer (which the moments then leave out).
    """
    mean = np.asarray(mean, dtype=np.float64)
    m2 = np.asarray(m2, dtype=np.float64)
    if samples < 2:
        raise SatcliError(f"layer '{name}' has {samples} fit samples; a projection needs at least 2")
    if nonfinite or not (np.isfinite(mean).all() and np.isfinite(m2).all()):
        raise SatcliError(f"layer '{name}' gave non-finite activations on the fit data; it cannot be projected")
    values, vectors = np.linalg.eigh(m2 / (samples - 1))
    values = np.clip(values[::-1], 0.0, None) if eigenvalues is None else np.asarray(eigenvalues, np.float64)
    return Eigenspace(name, type_, samples, mean, values, vectors[:, ::-1].copy())


@dataclass(frozen=True)
class Projector:
    """``z -> mu + V_k V_k^T (z - mu)`` on the channel vector of every position or token."""

    mean: np.ndarray
    basis: np.ndarray
    _cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def k(self) -> int:
        """Dimension of the kept eigenspace."""
        return int(self.basis.shape[1])

    @property
    def is_identity(self) -> bool:
        """True when k = d: the projection changes nothing (docs/method.md sec. 3), so it is not applied."""
        return self.basis.shape[1] == self.basis.shape[0]

    def apply(self, z: torch.Tensor, channel_dim: int) -> torch.Tensor:
        """The projected output, same shape and dtype as `z`; computed in float64 on z's device."""
        if self.is_identity:
            return z
        if z.shape[channel_dim] != self.mean.shape[0]:
            raise SatcliError(
                f"a projector of width {self.mean.shape[0]} got an output with {z.shape[channel_dim]} channels"
            )
        mean, matrix = self.affine(z.device)
        centred = z.movedim(channel_dim, -1).to(torch.float64, copy=True).sub_(mean)
        projected = (centred @ matrix).add_(mean)  # P = V_k V_k^T is symmetric: rows times P
        return projected.to(z.dtype).movedim(-1, channel_dim).contiguous()

    def affine(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, P = V_k V_k^T) as float64 tensors on `device`: the projection is ``mean + (z - mean) @ P``."""
        key = (device.type, str(device.index))
        if key not in self._cache:
            basis = torch.as_tensor(self.basis, dtype=torch.float64, device=device)
            self._cache[key] = (torch.as_tensor(self.mean, dtype=torch.float64, device=device), basis @ basis.T)
        return self._cache[key]


def output_change(squared_diff: float, squared_base: float) -> float:
    """sqrt(sum ||f_P(x) - f(x)||^2) / sqrt(sum ||f(x)||^2); 0 when nothing changed, inf for a zero base."""
    if squared_base > 0.0:
        return math.sqrt(squared_diff) / math.sqrt(squared_base)
    return 0.0 if squared_diff == 0.0 else math.inf


@dataclass
class OutputMetrics:
    """Streaming sums for one model variant: correct predictions, labelled inputs and squared norms (float64)."""

    correct: int = 0
    labelled: int = 0
    squared_diff: float = 0.0
    squared_base: float = 0.0

    def update(self, out: torch.Tensor, base: torch.Tensor, labels: torch.Tensor | None) -> None:
        """Add one batch: `out` and `base` are the variant's and the unmodified model's outputs, rows aligned."""
        diff = out.to(torch.float64) - base.to(torch.float64)
        self.squared_diff += float(torch.sum(diff * diff))
        base64 = base.to(torch.float64)
        self.squared_base += float(torch.sum(base64 * base64))
        if labels is not None:
            correct, labelled = count_correct(out, labels)
            self.correct += correct
            self.labelled += labelled

    @property
    def accuracy(self) -> float | None:
        """Share of labelled inputs whose argmax output is their label; None without labels."""
        return self.correct / self.labelled if self.labelled else None

    @property
    def change(self) -> float:
        """The output change over every batch seen."""
        return output_change(self.squared_diff, self.squared_base)


def count_correct(out: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """(inputs with argmax(output) == label, labelled inputs); labels < 0 mean "no label" and do not count."""
    if out.ndim != 2 or out.shape[0] != labels.shape[0]:
        raise SatcliError(
            f"accuracy needs one row of class scores per input, got outputs of shape {tuple(out.shape)} "
            f"for {labels.shape[0]} labels"
        )
    known = labels >= 0
    hits = (out.argmax(dim=1) == labels.to(out.device)) & known.to(out.device)
    return int(hits.sum()), int(known.sum())


@dataclass(frozen=True)
class ProjectionResult:
    """One model variant: a layer projected alone (scope "layer") or every non-output layer (scope "all")."""

    scope: str
    layer: str | None
    delta: float
    k: int | dict[str, int]
    width: int | None
    accuracy: float | None
    output_change: float

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (a non-finite output change becomes null)."""
        change = self.output_change if math.isfinite(self.output_change) else None
        k = dict(self.k) if isinstance(self.k, dict) else self.k
        return {
            "scope": self.scope,
            "layer": self.layer,
            "delta": self.delta,
            "k": k,
            "width": self.width,
            "accuracy": self.accuracy,
            "output_change": change,
        }


@dataclass(frozen=True)
class ProjectedLayer:
    """A layer the check projects: name, type, width and the fit samples its subspace came from."""

    name: str
    type: str
    width: int
    samples: int
    output: bool


@dataclass(frozen=True)
class ProjectionReport:
    """The whole check: where it ran, the base accuracy, every variant and how many forward passes it cost."""

    model: str
    model_format: str
    fit_data: str
    eval_data: str
    fit_inputs: int
    eval_inputs: int
    deltas: tuple[float, ...]
    layers: tuple[ProjectedLayer, ...]
    base_accuracy: float | None
    results: tuple[ProjectionResult, ...]
    passes: int

    def to_dict(self) -> dict[str, object]:
        """The JSON form (schema in docs/cli.md, "project")."""
        return {
            "model": self.model,
            "format": self.model_format,
            "fit_data": self.fit_data,
            "eval_data": self.eval_data,
            "fit_inputs": self.fit_inputs,
            "eval_inputs": self.eval_inputs,
            "deltas": list(self.deltas),
            "layers": [
                {"name": x.name, "type": x.type, "width": x.width, "fit_samples": x.samples, "output": x.output}
                for x in self.layers
            ],
            "base_accuracy": self.base_accuracy,
            "passes": self.passes,
            "results": [r.to_dict() for r in self.results],
        }
