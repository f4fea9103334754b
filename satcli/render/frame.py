"""Per-layer rows as flat records: for DataFrames, Parquet files and the HTML report's extra columns.

A row holds a layer's JSON keys (`satcli report -f json`) with nested analyses flattened to dotted names
("classes.between_share", "weights.alpha"), so every value is exactly the JSON document's. pandas and pyarrow
are optional and imported only when a frame or a file is asked for.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from satcli.core.results import CheckpointResult
from satcli.errors import SatcliError
from satcli.render.output import check_output_dir, replace_file
from satcli.render.serialize import result_json

MISSING_PANDAS = "DataFrames need pandas: pip install 'satcli[pandas]'"
MISSING_PYARROW = "parquet output needs pyarrow: pip install 'satcli[hf]'"
# Checkpoint columns in front of the layer columns when several checkpoints share one table.
CHECKPOINT_COLUMNS = ("model", "sha256", "data", "step", "average_saturation", "verdict")


def flatten(entry: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """A nested JSON object as one level: {"classes": {"nc1": 2.0}} -> {"classes.nc1": 2.0}; lists stay values."""
    flat: dict[str, object] = {}
    for key, value in entry.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def layer_records(result: CheckpointResult) -> list[dict[str, object]]:
    """One flat record per layer, in forward order, with the values of the checkpoint's JSON document."""
    document = json.loads(result_json(result))
    return [flatten(layer) for layer in document["layers"]]


def checkpoint_records(results: Sequence[CheckpointResult]) -> list[dict[str, object]]:
    """One record per checkpoint and layer: CHECKPOINT_COLUMNS, then the layer's flat record."""
    rows: list[dict[str, object]] = []
    for result in results:
        document = json.loads(result_json(result))
        step = document["options"].get("step") if isinstance(document["options"], dict) else None
        head = {key: step if key == "step" else document.get(key) for key in CHECKPOINT_COLUMNS}
        rows += [{**head, **flatten(layer)} for layer in document["layers"]]
    return rows


def _module(name: str, missing: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise SatcliError(missing) from None


def layers_frame(result: CheckpointResult) -> Any:
    """A pandas DataFrame of layer_records (one row per layer; columns in first-seen order)."""
    pandas = _module("pandas", MISSING_PANDAS)
    return pandas.DataFrame.from_records(layer_records(result))


def check_parquet_writable(output: Path) -> None:
    """Refuse before any work: no pyarrow, or no folder to write `output` into."""
    _module("pyarrow.parquet", MISSING_PYARROW)
    check_output_dir(output)


def write_parquet(results: Sequence[CheckpointResult], output: Path) -> Path:
    """checkpoint_records as one Parquet table (through pyarrow, no pandas needed)."""
    pyarrow = _module("pyarrow", MISSING_PYARROW)
    parquet = _module("pyarrow.parquet", MISSING_PYARROW)
    table = pyarrow.Table.from_pylist(checkpoint_records(results))
    return replace_file(output, lambda temp: parquet.write_table(table, temp))
