"""Class/cross-class spectra against a direct float64 numpy computation from the raw samples (METHOD.md sec. 4)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from satcli.analyses.classes import ClassesAnalysis
from satcli.analyses.saturation import SaturationAnalysis
from satcli.core.classes import class_spectra
from satcli.core.state import ClassStats, LayerStats
from satcli.taps.layers import DENSE, Layer


def reference(x: np.ndarray, y: np.ndarray) -> dict[str, float | int | None]:
    """Every number from its definition: population scatters built from the samples themselves."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    classes = np.unique(y)
    mu = x.mean(axis=0)
    sigma_t = (x - mu).T @ (x - mu) / n
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    counts = np.array([(y == c).sum() for c in classes], dtype=np.float64)
    offsets = means - mu
    sigma_b = sum(counts[i] / n * np.outer(offsets[i], offsets[i]) for i in range(len(classes)))
    sigma_w = sum((x[y == c] - means[i]).T @ (x[y == c] - means[i]) for i, c in enumerate(classes)) / n
    eig_b = scipy.linalg.eigvalsh(sigma_b)
    rank = int(np.sum(eig_b > 1e-10 * eig_b.max()))
    pinv = np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)
    cos = [
        offsets[i] @ offsets[j] / np.linalg.norm(offsets[i]) / np.linalg.norm(offsets[j])
        for i in range(len(classes))
        for j in range(len(classes))
        if i != j
    ]
    return {
        "num_classes": len(classes),
        "between_share": float(np.trace(sigma_b) / np.trace(sigma_t)),
        "nc1": float(np.trace(sigma_w @ pinv) / len(classes)),
        "rank_between": rank,
        "outliers": int(np.sum(scipy.linalg.eigvalsh(sigma_t) > scipy.linalg.eigvalsh(sigma_w).max())),
        "class_mean_cosine": float(np.mean(cos)),
    }


LAYER = Layer("fc", "Linear", DENSE, width=6, order=0)


def stream(x: np.ndarray, y: np.ndarray, batch: int = 37) -> tuple[LayerStats, ClassStats]:
    """The two analyses fed batch by batch, as the engine feeds them."""
    sat, cls = SaturationAnalysis(), ClassesAnalysis()
    for start in range(0, len(x), batch):
        xb = torch.from_numpy(x[start : start + batch])
        yb = torch.from_numpy(y[start : start + batch])
        sat.update(LAYER, xb, yb)
        cls.update(LAYER, xb, yb)
    return sat.state()["fc"], cls.state()["fc"]  # type: ignore[return-value]


def clustered(rng: np.random.Generator, labels: list[int], n: int, d: int = 6, offset: float = 0.0) -> tuple:
    centers = rng.normal(size=(len(labels), d)) * 3
    y = rng.choice(np.array(labels), size=n)
    index = {label: i for i, label in enumerate(labels)}
    x = np.stack([centers[index[int(v)]] for v in y]) + rng.normal(size=(n, d)) + offset
    return x, y.astype(np.int64)


def assert_matches(got: dict, want: dict, rtol: float = 1e-9) -> None:
    assert got["num_classes"] == want["num_classes"]
    assert got["rank_between"] == want["rank_between"]
    assert got["outliers"] == want["outliers"]
    for key in ("between_share", "nc1", "class_mean_cosine"):
        assert got[key] == pytest.approx(want[key], rel=rtol, abs=1e-12), key


def test_dense_layer_matches_numpy() -> None:
    x, y = clustered(np.random.default_rng(0), [0, 1, 2, 3], 400)
    stats, classes = stream(x, y)
    assert_matches(class_spectra(stats, classes).to_dict(), reference(x, y))


def test_sparse_label_ids_are_classes() -> None:
    x, y = clustered(np.random.default_rng(1), [3, 7, 9], 300)
    stats, classes = stream(x, y)
    assert list(classes.labels) == [3, 7, 9]
    assert_matches(class_spectra(stats, classes).to_dict(), reference(x, y))


def test_large_mean_layer_stays_exact() -> None:
    """Mean 1e3 times the spread, float32 activations: the shifted sums keep between_share exact."""
    x, y = clustered(np.random.default_rng(2), [0, 1, 2], 600, offset=3e3)
    x32 = x.astype(np.float32)
    stats, classes = stream(x32, y)
    want = reference(x32.astype(np.float64), y)
    assert_matches(class_spectra(stats, classes).to_dict(), want, rtol=1e-8)
    # The naive route (class means minus the grand mean, both near 3e3, in float32) is visibly off.
    means32 = np.stack([x32[y == c].mean(axis=0, dtype=np.float32) for c in (0, 1, 2)])
    naive = means32 - x32.mean(axis=0, dtype=np.float32)
    exact = np.stack([x32[y == c].astype(np.float64).mean(axis=0) for c in (0, 1, 2)]) - x32.astype(np.float64).mean(0)
    assert np.abs(naive - exact).max() > 1e-6


def test_merged_halves_equal_one_pass() -> None:
    x, y = clustered(np.random.default_rng(3), [0, 1, 2, 5], 500, offset=50.0)
    whole = ClassesAnalysis()
    whole.update(LAYER, torch.from_numpy(x), torch.from_numpy(y))
    first, second = ClassesAnalysis(), ClassesAnalysis()
    first.update(LAYER, torch.from_numpy(x[:200]), torch.from_numpy(y[:200]))
    second.update(LAYER, torch.from_numpy(x[200:] + 0), torch.from_numpy(y[200:]))
    first.merge(second.state())
    a, b = whole.state()["fc"], first.state()["fc"]
    assert isinstance(a, ClassStats) and isinstance(b, ClassStats)
    assert list(a.labels) == list(b.labels) and list(a.counts) == list(b.counts)
    means_a = a.shift + a.sums / a.counts[:, None]
    means_b = b.shift + b.sums / b.counts[:, None]
    np.testing.assert_allclose(means_a, means_b, rtol=1e-12)


def test_channelwise_samples_carry_their_inputs_label() -> None:
    """Conv samples at every position: a (B, H, W, C) view, labels expanded per position."""
    from satcli.taps.reduce import sample_labels

    rng = np.random.default_rng(4)
    out = torch.from_numpy(rng.normal(size=(8, 6, 3, 3)))
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 0, 1])
    samples = out.movedim(1, -1)
    per_sample = sample_labels(labels, samples, 8)
    cls, sat = ClassesAnalysis(), SaturationAnalysis()
    conv = Layer("conv", "Conv2d", "conv", width=6, order=0)
    cls.update(conv, samples, per_sample)
    sat.update(conv, samples, per_sample)
    flat = samples.reshape(-1, 6).numpy()
    want = reference(flat, np.repeat(labels.numpy(), 9))
    assert_matches(class_spectra(sat.state()["conv"], cls.state()["conv"]).to_dict(), want)  # type: ignore[arg-type]


def test_one_class_a_single_sample_class_and_missing_labels_are_notes() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 6))
    one = class_spectra(*stream(x, np.zeros(50, dtype=np.int64)))
    assert one.num_classes == 1 and one.between_share is None
    assert any("needs at least 2" in note for note in one.notes)
    y = np.array([0] * 25 + [1] * 24 + [2], dtype=np.int64)
    single = class_spectra(*stream(x, y))
    assert single.between_share is not None and any("single sample: 2" in note for note in single.notes)
    assert_matches(single.to_dict(), reference(x, y))
    y_missing = y.copy()
    y_missing[:5] = -1
    missing = class_spectra(*stream(x, y_missing))
    assert missing.between_share is None and any("5 samples without a label" in n for n in missing.notes)


def test_equiangular_means_give_minus_one_over_c_minus_one() -> None:
    """A hand case: C simplex-vertex class means with tiny spread."""
    c, d, per = 4, 6, 50
    vertices = np.eye(c, d) - np.eye(c, d).mean(axis=0)
    rng = np.random.default_rng(6)
    x = np.repeat(vertices, per, axis=0) + 1e-4 * rng.normal(size=(c * per, d))
    y = np.repeat(np.arange(c), per)
    spectra = class_spectra(*stream(x, y))
    assert spectra.class_mean_cosine == pytest.approx(-1 / (c - 1), abs=1e-3)
    assert spectra.rank_between == c - 1
    assert spectra.between_share == pytest.approx(1.0, abs=1e-6)


def test_ill_conditioned_nc1_matches_a_50_digit_reference() -> None:
    """features.0 of the frozen store: Sigma_B's smallest kept eigenvalue is 5e-9 of its largest, so nc1
    (which divides by it) is checked against mpmath at 50 digits, not against a float64 route."""
    import mpmath as mp
    from conftest import REPO

    from satcli.store.reader import read_store

    _, [checkpoint] = read_store(REPO / "tests" / "fixtures" / "store_v2.h5")
    layer = checkpoint.layers[0]
    stats, classes = layer.stats, layer.extras["classes"]
    assert isinstance(classes, ClassStats)
    mp.mp.dps = 50
    counts = [mp.mpf(int(c)) for c in classes.counts]
    n, d, num = sum(counts), classes.sums.shape[1], len(counts)
    sums = [[mp.mpf(float(v)) for v in row] for row in classes.sums]
    grand = [sum(sums[c][j] for c in range(num)) / n for j in range(d)]
    offsets = [[sums[c][j] / counts[c] - grand[j] for j in range(d)] for c in range(num)]
    sigma_b = mp.matrix(d, d)
    for c in range(num):
        for i in range(d):
            for j in range(d):
                sigma_b[i, j] += counts[c] / n * offsets[c][i] * offsets[c][j]
    sigma_w = mp.matrix([[mp.mpf(float(v)) / n for v in row] for row in stats.m2]) - sigma_b
    values, vectors = mp.eigsy(sigma_b)
    top = max(values[i] for i in range(d))
    nc1 = mp.mpf(0)
    for k in range(d):
        if values[k] > mp.mpf("1e-10") * top:
            v = vectors[:, k]
            nc1 += (v.T * sigma_w * v)[0, 0] / values[k]
    assert class_spectra(stats, classes).nc1 == pytest.approx(float(nc1 / num), rel=1e-9)
