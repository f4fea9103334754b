"""`satcli compare` adds per-layer CKA from stored activations, or one note pointing to `satcli similarity`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cka_reference import reference_cka
from conftest import SAMPLE_MODELS

from satcli.store.reader import read_activations, read_store

SENSIBLE = SAMPLE_MODELS / "sensible.pt2"
STATE_DICT = SAMPLE_MODELS / "sensible_state_dict.pt"
ARCH = "sample_models.architectures:sensible"


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from satcli.cli import main

    tmp = tmp_path_factory.mktemp("compare_cka")
    state = torch.load(STATE_DICT, weights_only=True)
    gen = torch.Generator().manual_seed(0)
    noisy = {k: v + 0.3 * v.std() * torch.randn(v.shape, generator=gen) for k, v in state.items()}
    torch.save(noisy, tmp / "noisy.pt")
    out = [tmp / "a.h5", tmp / "b.h5", tmp / "c.h5"]
    for argv in (
        [str(SENSIBLE), "--store", str(out[0]), "--activations"],
        [str(tmp / "noisy.pt"), "--arch", ARCH, "--store", str(out[1]), "--activations"],
        [str(SENSIBLE), "--store", str(out[2]), "--no-activations"],
    ):
        with pytest.raises(SystemExit) as done:
            main(["analyze", *argv, "-q", "-f", "json"])
        assert done.value.code == 0
    return out[0], out[1], out[2]


def test_compare_json_has_cka_equal_to_numpy_on_the_stored_activations(run_cli, stores) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = stores
    result = run_cli("compare", a, b, "-f", "json")
    assert result.code == 0, result.stderr
    cka = json.loads(result.stdout)["cka"]
    (_, [ca]), (_, [cb]) = read_store(a), read_store(b)
    assert cka["baseline"] == "A" and len(cka["layers"]) == 5
    for name, values in cka["layers"].items():
        want = reference_cka(read_activations(a, ca.key, name), read_activations(b, cb.key, name))
        assert values["B"] == pytest.approx(want, rel=1e-9)
        assert 0.0 < values["B"] < 1.0
    table = run_cli("compare", a, b)
    assert "linear CKA with A" in table.stdout and table.stderr == ""


def test_compare_without_activations_prints_one_note(run_cli, stores) -> None:  # type: ignore[no-untyped-def]
    a, _, c = stores
    result = run_cli("compare", a, c)
    assert result.code == 0
    assert "linear CKA" not in result.stdout
    assert result.stderr.count("\n") == 1 and "satcli similarity" in result.stderr
    assert json.loads(run_cli("compare", a, c, "-f", "json").stdout)["cka"] is None
