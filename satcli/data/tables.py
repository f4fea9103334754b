""".parquet / .jsonl / .csv tables, read with pyarrow into an in-memory `datasets.Dataset`.

Parquet files written by `datasets` keep their features (Image, ClassLabel) through the schema metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from satcli.data.common import _one_line
from satcli.data.hf import _datasets
from satcli.data.rows import open_rows
from satcli.data.source import DataOptions, DataSource, _check_split
from satcli.errors import SatcliError

TABLE_SUFFIXES = {".parquet": "Parquet", ".jsonl": "JSON lines", ".csv": "CSV"}


def open_table(spec: str, path: Path, options: DataOptions) -> DataSource:
    """A table file as a data source; one row per sample."""
    _check_split(str(path), options.split, (DataOptions.split,))
    if not path.is_file():
        raise SatcliError(f"data file not found: {path}")
    datasets = _datasets()
    kind = TABLE_SUFFIXES[path.suffix.lower()]
    table = _read(path, kind)
    try:
        rows = datasets.Dataset(table)
    except Exception as exc:
        raise SatcliError(f"cannot read {path} as a {kind} table: {_one_line(exc)}") from None
    return open_rows(spec, str(path), rows, options, [])


def _read(path: Path, kind: str) -> Any:
    import pyarrow.csv
    import pyarrow.json
    import pyarrow.parquet

    readers = {"Parquet": pyarrow.parquet.read_table, "JSON lines": pyarrow.json.read_json, "CSV": pyarrow.csv.read_csv}
    try:
        return readers[kind](str(path))
    except Exception as exc:
        raise SatcliError(f"cannot read {path} as a {kind} table: {_one_line(exc)}") from None
