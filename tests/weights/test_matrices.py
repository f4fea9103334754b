"""Weight matrices: the SVR and cosvr reshapes and WeightWatcher's conv slices, against hand-built numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from satcli.errors import SatcliError
from satcli.weights.matrices import esd_matrices, layer_weights, svr_matrix
from satcli.weights.report import svr_report

from .conftest import REPO, loaded_module


def test_svr_and_cosvr_reshapes() -> None:
    w = np.random.default_rng(0).standard_normal((5, 3, 2, 2))
    plain, z_u, z_v = svr_matrix(w, "svr")
    assert (plain.shape, z_u, z_v) == ((5, 12), 1, 4)
    assert all(plain[o, c * 4 + p] == w[o, c].ravel()[p] for o in range(5) for c in range(3) for p in range(4))
    dual, z_u, z_v = svr_matrix(w, "cosvr")
    assert (dual.shape, z_u, z_v) == ((20, 3), 4, 1)
    assert all(dual[o * 4 + p, c] == w[o, c].ravel()[p] for o in range(5) for c in range(3) for p in range(4))
    dense = np.ones((4, 6))
    assert svr_matrix(dense, "cosvr")[0].shape == (4, 6)
    with pytest.raises(SatcliError, match="unknown SVR method"):
        svr_matrix(dense, "nope")


def test_esd_matrices_are_weightwatchers_kernel_slices() -> None:
    w = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    slices = esd_matrices(w)
    assert len(slices) == 4
    np.testing.assert_array_equal(slices[1], w[:, :, 0, 1])
    assert len(esd_matrices(np.ones((3, 5)))) == 1


def test_cosvr_conv_pair_against_numpy_loops() -> None:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 3)).double()
    report = svr_report(model, input_shape=(2, 9, 9), method="cosvr")
    w1, w2 = (m.weight.detach().numpy() for m in (model[0], model[2]))
    first = np.array([[w1[o, c].ravel()[p] for c in range(2)] for o in range(6) for p in range(9)])  # (o z) x in
    second = np.array([[w2[o, c].ravel()[p] for c in range(6)] for o in range(4) for p in range(9)])
    u1 = np.linalg.svd(first, full_matrices=False)[0]  # (54, 2): u_j reads as (6 channels, 9 positions)
    v2 = np.linalg.svd(second, full_matrices=False)[2].T  # (6, 6)
    expected = np.array(
        [[sum(np.dot(v2[:, i], u1[[c * 9 + p for c in range(6)], j]) ** 2 for p in range(9)) for j in range(2)]
         for i in range(6)]
    )  # fmt: skip
    (pair,) = report.pairs
    assert (pair.result.z, pair.result.n) == (9, 6)
    np.testing.assert_allclose(pair.result.adjacency, expected, rtol=1e-10, atol=1e-14)


def test_layer_weights_use_analyze_names_and_skip_recurrent_layers() -> None:
    names = list(layer_weights(loaded_module(REPO / "sample_models" / "sensible.pt2")))
    assert names == ["features.0", "features.2", "features.5", "head.0", "head.2"]
    model = nn.Sequential(nn.LSTM(3, 4, batch_first=True))
    assert layer_weights(model) == {}


def test_a_parametrized_weight_is_read_through_its_module() -> None:
    layer = nn.utils.parametrizations.weight_norm(nn.Linear(4, 5))
    found = layer_weights(nn.Sequential(layer, nn.ReLU(), nn.Linear(5, 2)))
    np.testing.assert_allclose(found["0"].weight, layer.weight.detach().double().numpy(), rtol=1e-7)
