"""--format on every command: -f everywhere, json one document on stdout, jsonl one object per line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLE_MODELS
from store_helpers import write_store

NARROW = SAMPLE_MODELS / "narrow.pt2"
# x [1,1]: k 2 of 2; y [1,0,0,0]: k 1 of 4; out is the output layer
CHECKPOINTS = [
    ("a.pt", {"x": [1, 1], "out": [1, 0]}),
    ("b.pt", {"y": [1, 0, 0, 0], "out": [1, 0]}),
    ("c.pt", {"x": [1, 1], "out": [1, 0]}),
]


@pytest.mark.parametrize("command", ["weights", "svr"])
def test_weights_and_svr_take_short_f(run_cli, command: str) -> None:
    short = run_cli(command, SAMPLE_MODELS / "sensible.pt2", "-f", "json")
    assert short.code == 0, short.stderr
    assert json.loads(short.stdout)["layers"]
    assert short.stdout == run_cli(command, SAMPLE_MODELS / "sensible.pt2", "--format", "json").stdout


def test_report_json_is_one_document_for_one_and_for_several_checkpoints(run_cli, tmp_path: Path) -> None:
    store = write_store(tmp_path / "runs.h5", CHECKPOINTS)
    one = run_cli("report", f"{store}:0001", "-f", "json")
    assert one.code == 0, one.stderr
    assert json.loads(one.stdout)["model"] == "b.pt"  # one checkpoint: its object, as before
    several = run_cli("report", store, "-f", "json")
    assert several.code == 0, several.stderr
    document = json.loads(several.stdout)
    assert list(document) == ["checkpoints"]
    assert [c["model"] for c in document["checkpoints"]] == ["a.pt", "b.pt", "c.pt"]
    lines = run_cli("report", store, "-f", "jsonl").stdout.splitlines()
    assert [json.loads(line) for line in lines] == document["checkpoints"]


def test_analyze_json_is_one_document_and_jsonl_one_line_per_checkpoint(run_cli, tmp_path: Path) -> None:
    models = [tmp_path / f"epoch_{i}.pt2" for i in (1, 2, 3)]
    for model in models:
        shutil.copy(NARROW, model)
    common = ("--no-store", "--max-samples", "100", "-q")
    one = run_cli("analyze", models[0], *common, "-f", "json")
    assert one.code == 0, one.stderr
    single = json.loads(one.stdout)
    assert single["model"] == str(models[0])
    several = run_cli("analyze", *models, *common, "-f", "json")
    assert several.code == 0, several.stderr
    document = json.loads(several.stdout)
    assert [c["model"] for c in document["checkpoints"]] == [str(m) for m in models]
    lines = run_cli("analyze", *models, *common, "-f", "jsonl").stdout.splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert [r["model"] for r in records] == [str(m) for m in models]
    assert [r["layers"] for r in records] == [c["layers"] for c in document["checkpoints"]]
    assert records[0]["layers"] == single["layers"]
