"""Machine-readable output: one JSON object per checkpoint, and CSV rows per checkpoint and layer."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence

import numpy as np

from satcli.core.results import CheckpointResult

CSV_FIELDS: tuple[str, ...] = (
    "model",
    "sha256",
    "data",
    "layer_index",
    "layer",
    "type",
    "width",
    "samples",
    "k",
    "saturation",
    "flags",
    "reduction",
    "is_output",
    "in_tail",
    "average_saturation",
    "verdict",
)


def json_ready(value: object) -> object:
    """Replace non-finite floats by None, numpy scalars by Python ones, tuples by lists, recursively."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def result_json(result: CheckpointResult) -> str:
    """One checkpoint as one line of JSON without NaN; keys in to_dict's order, options sorted by key."""
    data = result.to_dict()
    options = data.get("options")
    if isinstance(options, dict):
        data["options"] = {key: options[key] for key in sorted(options, key=str)}
    return json.dumps(json_ready(data), allow_nan=False, ensure_ascii=False, default=str)


def results_json(results: Sequence[CheckpointResult]) -> str:
    """Several checkpoints as one JSON document, `{"checkpoints": [...]}` of result_json's objects in order."""
    return '{"checkpoints": [' + ", ".join(result_json(result) for result in results) + "]}"


def _csv_number(x: float | int | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    return str(x)


def _csv_rows(result: CheckpointResult) -> Iterable[dict[str, str]]:
    verdict = result.verdict
    for index, layer in enumerate(result.layers, start=1):
        yield {
            "model": result.model,
            "sha256": result.sha256,
            "data": result.data,
            "layer_index": str(index),
            "layer": layer.name,
            "type": layer.type,
            "width": str(layer.width),
            "samples": str(layer.samples),
            "k": _csv_number(layer.k),
            "saturation": _csv_number(layer.saturation),
            "flags": ";".join(layer.flags),
            "reduction": layer.reduction,
            "is_output": "true" if layer.name == verdict.output_layer else "false",
            "in_tail": "true" if layer.name in verdict.tail else "false",
            "average_saturation": _csv_number(verdict.average),
            "verdict": verdict.label,
        }


def results_csv(results: Sequence[CheckpointResult]) -> str:
    """A header plus one row per checkpoint and layer (layer_index 1-based, as the table's #)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerows(_csv_rows(result))
    return out.getvalue()


def csv_header() -> str:
    """The CSV header line alone, for output that writes one checkpoint's rows at a time (csv_rows)."""
    return results_csv([])


def csv_rows(result: CheckpointResult) -> str:
    """One checkpoint's CSV rows without the header: results_csv([r]) == csv_header() + csv_rows(r)."""
    return results_csv([result])[len(csv_header()) :]
