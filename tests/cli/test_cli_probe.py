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
    assert "evaluated on the fit data: training accuracy" in " ".join(out.split())
    held_out = run("probe", SENSIBLE, "--data", "digits", "--split", "train", "--eval-split", "test")[1]
    assert "training accuracy" not in held_out


def test_unlabelled_eval_data_is_one_line_exit_2(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    images = tmp_path / "x.npy"
    np.save(images, np.random.default_rng(0).random((20, 1, 8, 8), dtype=np.float32))
    code, _ = run("probe", SENSIBLE, "--data", "digits", "--max-samples", "50", "--eval-data", str(images))
    err = capsys.readouterr().err
    assert code == 2 and "carry no labels" in err and len(err.strip().splitlines()) == 1


def test_a_merged_store_of_shards_is_evaluated_with_its_merged_fit(tmp_path, run_cli) -> None:  # type: ignore[no-untyped-def]
    """Shards each evaluate their own fit; --fit-store fits the merged moments and gives one pass's accuracies."""
    fit = ("--data", "digits", "--split", "train", "--analysis", "probe:ridge=0.01", "--keep-moments", "-q")
    parts = [tmp_path / f"p{i}.h5" for i in range(3)]
    for i, part in enumerate(parts):
        assert run_cli("analyze", SENSIBLE, *fit, "--shard", f"{i}/3", "--store", part, "-f", "json").code == 0
    merged = tmp_path / "m.h5"
    assert run_cli("merge", *parts, "-o", merged).code == 0
    stale = json.loads(run_cli("report", merged, "-f", "json").stdout)["layers"][0]["probe"]
    assert stale["accuracy"] is None and "--fit-store" in stale["note"]
    got = run_cli("probe", SENSIBLE, "--fit-store", merged, "--data", "digits", "--split", "test", "-f", "json")
    assert got.code == 0, got.stderr
    one = run_cli("probe", SENSIBLE, "--data", "digits", "--split", "train", "--eval-split", "test", "--ridge", "0.01",
                  "-f", "json")  # fmt: skip
    probes = [layer["probe"] for layer in json.loads(got.stdout)["layers"]]
    assert probes == [layer["probe"] for layer in json.loads(one.stdout)["layers"]]
    assert {(p["n_fit"], p["n_eval"], p["ridge"]) for p in probes} == {(1198, 599, 0.01)}  # the stored ridge
    table = run_cli("probe", SENSIBLE, "--fit-store", merged, "--data", "digits", "--split", "test")
    assert table.code == 0 and f"fit {merged}" in table.stdout


def test_a_stored_fit_is_refused_for_another_model_or_without_moments(tmp_path, run_cli) -> None:  # type: ignore[no-untyped-def]
    store, bare = tmp_path / "s.h5", tmp_path / "bare.h5"
    base = ("analyze", SENSIBLE, "--data", "digits", "--max-samples", "200", "--analysis", "probe", "-q", "-f", "json")
    assert run_cli(*base, "--keep-moments", "--store", store).code == 0
    assert run_cli(*base, "--store", bare).code == 0
    cases = {
        (str(SAMPLE_MODELS / "deep_wide.pt2"), str(store)): "evaluate it with the model it was fitted on",
        (SENSIBLE, str(bare)): "--keep-moments",
        (SENSIBLE, str(tmp_path / "missing.h5")): "missing.h5",
    }
    for (model, fit_store), message in cases.items():
        result = run_cli("probe", model, "--fit-store", fit_store)
        assert result.code == 2 and result.stdout == "", result.stderr
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    result = run_cli("probe", SENSIBLE, "--fit-store", store, "--layers", "head.0")
    assert result.code == 2 and "--layers" in result.stderr
