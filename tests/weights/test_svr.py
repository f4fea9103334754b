"""SVR maths (METHOD.md sec. 5) against float64 numpy/scipy references and constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from satcli.weights import svr
from satcli.weights.matrices import BatchNorm, fold_batchnorm, svr_matrix
from satcli.weights.report import svr_report
from satcli.weights.svr import pair_svr, tail_probability, threshold, top_modes

from .conftest import digits_mlp


def _share_within_binomial(count: int, total: int, p: float, sds: float = 4.0) -> bool:
    return abs(count - total * p) <= sds * np.sqrt(total * p * (1 - p))


def test_threshold_matches_the_normal_quantile_for_one_degree_of_freedom() -> None:
    # chi2_1^-1(1 - p) = Phi^-1(1 - p/2)^2, an identity independent of scipy's chi2
    p = 1 - stats.norm.cdf(3.0)
    assert tail_probability(3.0) == pytest.approx(1.3499e-3, rel=1e-4)
    assert threshold(1, 50, 3.0) == pytest.approx(stats.norm.ppf(1 - p / 2) ** 2 / 50, rel=1e-10)
    assert threshold(9, 24, 3.0) == pytest.approx(stats.chi2.ppf(1 - p, 9) / (9 * 24), rel=1e-10)


def test_iid_gaussian_weights_give_p_significant_edges() -> None:
    rng = np.random.default_rng(0)
    count = total = 0
    for _ in range(2):
        first, second = rng.standard_normal((256, 256)), rng.standard_normal((256, 256))
        result = pair_svr(top_modes(first, 128), top_modes(second, 128), 256, 1, 1, 3.0)
        count += int(result.significant.sum())
        total += result.adjacency.size
    assert _share_within_binomial(count, total, tail_probability(3.0))


def test_iid_gaussian_conv_weights_give_p_significant_edges() -> None:
    rng = np.random.default_rng(1)
    count = total = 0
    for _ in range(3):
        m1, _, _ = svr_matrix(rng.standard_normal((64, 32, 3, 3)))
        m2, z_u, z_v = svr_matrix(rng.standard_normal((128, 64, 3, 3)))
        result = pair_svr(top_modes(m1, 128), top_modes(m2, 128), 64, z_u, z_v, 3.0)
        assert result.z == 9
        count += int(result.significant.sum())
        total += result.adjacency.size
    assert _share_within_binomial(count, total, tail_probability(3.0))


def test_a_constructed_chain_where_u_j_is_v_i_gives_a_one() -> None:
    rng = np.random.default_rng(2)
    basis, _ = np.linalg.qr(rng.standard_normal((20, 20)))
    s1 = np.linspace(5, 1, 20)
    first = basis @ np.diag(s1) @ np.linalg.qr(rng.standard_normal((30, 20)))[0].T  # u_j = basis[:, j]
    order = [4, 0, 1, 2, 3, *range(5, 20)]  # v_i of the second layer is u_order[i] of the first
    second = np.linalg.qr(rng.standard_normal((20, 20)))[0] @ np.diag(np.linspace(9, 2, 20)) @ basis[:, order].T
    result = pair_svr(top_modes(first, 128), top_modes(second, 128), 20, 1, 1, 3.0)
    expected = np.zeros((20, 20))
    expected[np.arange(20), order] = 1.0
    np.testing.assert_allclose(result.adjacency, expected, atol=1e-12)
    assert result.significant[0, 4]
    assert result.significant.sum() == 20
    assert result.strongest()[2] == pytest.approx(1.0, abs=1e-12)


def test_truncated_svd_keeps_the_top_modes_in_descending_order(monkeypatch: pytest.MonkeyPatch) -> None:
    a = np.random.default_rng(3).standard_normal((90, 70))
    full = np.linalg.svd(a, compute_uv=False)
    monkeypatch.setattr(svr, "FULL_SVD_MAX_ENTRIES", 10)  # force the ARPACK path
    modes = top_modes(a, 12)
    assert modes.s == pytest.approx(full[:12], rel=1e-9)
    assert np.all(np.diff(modes.s) < 0)
    np.testing.assert_allclose(np.abs(np.sum(modes.u * (a @ modes.v), axis=0)), modes.s, rtol=1e-9)


def _modes(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, _, vt = np.linalg.svd(matrix, full_matrices=False)
    return u, vt.T


def test_conv_to_conv_pair_against_numpy_loops() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 5, 3, padding=1)).double()
    report = svr_report(model, input_shape=(3, 12, 12))
    w1, w2 = (m.weight.detach().numpy() for m in (model[0], model[3]))
    u1, _ = _modes(w1.reshape(6, -1))
    _, v2 = _modes(w2.reshape(5, -1))  # columns index c * 9 + (kh * 3 + kw)
    expected = np.zeros((5, 6))
    for i in range(5):
        for j in range(6):
            for p in range(9):
                expected[i, j] += sum(v2[c * 9 + p, i] * u1[c, j] for c in range(6)) ** 2
    (pair,) = report.pairs
    assert (pair.src, pair.dst, pair.result.z, pair.result.n) == ("0", "3", 9, 6)
    np.testing.assert_allclose(pair.result.adjacency, expected, rtol=1e-10, atol=1e-14)


def test_conv_flatten_dense_pair_against_numpy_loops() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 5 * 5, 7)).double()
    report = svr_report(model, input_shape=(2, 7, 7))
    u1, _ = _modes(model[0].weight.detach().numpy().reshape(4, -1))
    _, v2 = _modes(model[3].weight.detach().numpy())  # flatten index c * 25 + position
    expected = np.array(
        [[sum(np.dot(v2[[c * 25 + p for c in range(4)], i], u1[:, j]) ** 2 for p in range(25)) for j in range(4)]
         for i in range(7)]
    )  # fmt: skip
    (pair,) = report.pairs
    assert (pair.result.z, pair.result.n) == (25, 4)
    np.testing.assert_allclose(pair.result.adjacency, expected, rtol=1e-10, atol=1e-14)


def test_global_pooling_gives_z_one_and_dense_pairs_are_plain_dot_products() -> None:
    torch.manual_seed(2)
    head = (nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), *head).double()
    report = svr_report(model, input_shape=(1, 6, 6))
    first, second = report.pairs
    assert (first.result.z, second.result.z) == (1, 1)
    u, _ = _modes(model[4].weight.detach().numpy())
    _, v = _modes(model[6].weight.detach().numpy())
    np.testing.assert_allclose(second.result.adjacency, (v.T @ u) ** 2, rtol=1e-10)


def test_fold_batchnorm_equals_torch_fused_conv_weights() -> None:
    torch.manual_seed(3)
    conv, bn = nn.Conv2d(3, 5, 3).double(), nn.BatchNorm2d(5).double()
    bn.running_var.uniform_(0.2, 3.0)
    bn.weight.data.uniform_(-2.0, 2.0)
    fused, _ = torch.nn.utils.fusion.fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    spec = BatchNorm("bn", bn.weight.detach().numpy(), bn.running_var.numpy(), bn.eps)
    np.testing.assert_allclose(fold_batchnorm(conv.weight.detach().numpy(), spec), fused.detach().numpy(), rtol=1e-12)


def test_batchnorm_folding_connects_the_near_kernels_as_the_seed_describes() -> None:
    """8 of 64 channels switched off by BatchNorm (the next layer ignores them too): folded, the two layers'
    smallest modes live on those channels and connect significantly; unfolded, they do not."""
    torch.manual_seed(4)
    dead = 8
    model = nn.Sequential(nn.Conv2d(16, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.Conv2d(64, 64, 1)).double().eval()
    with torch.no_grad():
        model[1].weight[:dead] = 0.01
        model[3].weight[:, :dead] *= 0.01
    folded = svr_report(model, input_shape=(16, 6, 6)).pairs[0].result
    plain = svr_report(model, input_shape=(16, 6, 6), fold_bn=False).pairs[0].result
    assert svr_report(model, input_shape=(16, 6, 6)).layers[0].batchnorm == "1"
    near_kernel = np.s_[-dead:, -dead:]
    assert folded.significant[near_kernel].sum() >= 8
    assert plain.significant[near_kernel].sum() <= 1
    assert folded.significant.sum() > 2 * plain.significant.sum()


def test_a_trained_digits_mlp_has_many_more_significant_edges_than_at_init(trained_mlp: nn.Module) -> None:
    trained = svr_report(trained_mlp, input_shape=(1, 8, 8))
    initial = svr_report(digits_mlp(0), input_shape=(1, 8, 8))
    count = [sum(int(p.result.significant.sum()) for p in r.pairs) for r in (trained, initial)]
    total = sum(p.result.adjacency.size for p in initial.pairs)
    assert _share_within_binomial(count[1], total, tail_probability(3.0))
    assert count[0] > 5 * max(count[1], 1)
