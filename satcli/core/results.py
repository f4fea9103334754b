"""The result of scoring one checkpoint: what the store keeps and the renderers print."""

from __future__ import annotations

from dataclasses import dataclass, field

from satcli.core.spectral import LayerScore
from satcli.core.verdict import Verdict


@dataclass(frozen=True)
class CheckpointResult:
    """Per-layer scores in forward order plus the verdict, with where they came from."""

    model: str
    sha256: str
    model_format: str
    data: str
    layers: tuple[LayerScore, ...]
    verdict: Verdict
    options: dict[str, object] = field(default_factory=dict)
    store: str | None = None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict: one object per checkpoint; a split run's record is lifted out of the options."""
        options = dict(self.options)
        distributed = options.pop("distributed", None)
        return {
            "model": self.model,
            "sha256": self.sha256,
            "model_format": self.model_format,
            "data": self.data,
            "layers": [layer.to_dict() for layer in self.layers],
            **self.verdict.to_dict(),
            "options": options,
            "store": self.store,
            **({"distributed": distributed} if distributed is not None else {}),
        }
