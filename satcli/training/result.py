"""The Python API's result: one scored checkpoint, as the CLI's JSON document or its Rich table."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from satcli.core.results import CheckpointResult
from satcli.core.spectral import LayerScore
from satcli.core.verdict import Verdict
from satcli.render.serialize import result_json
from satcli.render.table import render_result


@dataclass(frozen=True)
class Result:
    """One scored checkpoint: per-layer k and saturation, the average and the verdict."""

    checkpoint: CheckpointResult

    @property
    def layers(self) -> tuple[LayerScore, ...]:
        return self.checkpoint.layers

    @property
    def verdict(self) -> Verdict:
        return self.checkpoint.verdict

    @property
    def average_saturation(self) -> float | None:
        return self.checkpoint.verdict.average

    def saturation(self) -> dict[str, float | None]:
        """Saturation by layer name, in forward order."""
        return {layer.name: layer.saturation for layer in self.layers}

    def to_dict(self) -> dict[str, object]:
        """Exactly the CLI's JSON document for one checkpoint (`satcli analyze --format json`)."""
        return json.loads(result_json(self.checkpoint))

    def to_pandas(self) -> Any:
        """A pandas DataFrame, one row per layer in forward order: the JSON document's layer keys, nested
        analyses flattened ("classes.between_share"). Needs pandas (pip install 'satcli[pandas]')."""
        from satcli.render.frame import layers_frame

        return layers_frame(self.checkpoint)

    def _repr_html_(self) -> str:
        """A notebook's view: the HTML report's header, per-layer table and verdict."""
        from satcli.render.html import notebook_html

        return notebook_html(self.checkpoint)

    def table(self, width: int | None = None) -> str:
        """The CLI's table (header, layers, verdict panel) as plain text, to print or log.

        `width` in columns; by default as wide as the layer names need, as the CLI prints it off a terminal.
        """
        text = io.StringIO()
        console = Console(file=text, width=width or 80, color_system=None, soft_wrap=False)
        console.fit_content = width is None  # type: ignore[attr-defined]  # read by render.text.fitted
        render_result(self.checkpoint, console)
        return text.getvalue()

    def __str__(self) -> str:
        return self.table()
