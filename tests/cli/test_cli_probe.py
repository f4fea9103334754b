"""`satcli probe`: the fit and evaluation splits are the ones named, the JSON keys of docs/method.md sec. 9, and
the same accuracies as `analyze --analysis probe` (the engine's numbers are checked against sklearn in
tests/analyses/test_probe.py)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from conftest import SAMPLE_MODELS

SENSIBLE = str(SAMPLE_MODELS / "sensible.pt2")


def run(*args: str) -> tuple[int, str]:
    from satcli.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit) as done:
        main(list(args))
    return int(done.value.code or 0), buffer.getvalue()


def test_probe_json_splits_and_analyze_agree() -> None:
    code, out = run("probe", SENSIBLE, "--data", "digits", "--split", "train", "--eval-split", "test", "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["options"]["data"].startswith("digits (train") and doc["options"]["eval_data"].startswith("digits (test")
    probes = [layer["probe"] for layer in doc["layers"]]
    assert all(set(p) == {"accuracy", "gain", "ridge", "n_fit", "n_eval"} for p in probes)
    assert {(p["n_fit"], p["n_eval"], p["ridge"]) for p in probes} == {(1198, 599, 1e-3)}
    code, out = run(
        "analyze", SENSIBLE, "--data", "digits", "--split", "train", "--eval-data", "digits", "--eval-split", "test",
        "--analysis", "probe", "--no-store", "-q", "-f", "json",
    )  # fmt: skip
    assert code == 0
    assert [layer["probe"] for layer in json.loads(out)["layers"]] == probes


def test_probe_table_marks_the_tail(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("probe", str(SAMPLE_MODELS / "deep_wide.pt2"), "--data", "digits", "--max-samples", "300")
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[1] for row in rows if "tail" in row] and all(row[-1] == "300" for row in rows)


def test_unlabelled_eval_data_is_one_line_exit_2(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    images = tmp_path / "x.npy"
    np.save(images, np.random.default_rng(0).random((20, 1, 8, 8), dtype=np.float32))
    code, _ = run("probe", SENSIBLE, "--data", "digits", "--max-samples", "50", "--eval-data", str(images))
    err = capsys.readouterr().err
    assert code == 2 and "carry no labels" in err and len(err.strip().splitlines()) == 1
