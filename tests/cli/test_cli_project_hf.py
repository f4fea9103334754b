"""`satcli project` on a Hugging Face text model (token mask) and a timm state dict, against plain hooks + numpy.

The BERT reference runs every text alone through transformers (no padding at all), so any padding token that
entered satcli's fit or its output change would show; the subspace comes from numpy's float64 covariance.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hf_helpers import hooked_outputs, masked_samples, numpy_k, random_texts, write_bert

datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")

N_TEXTS = 24
LAYER = "bert.encoder.layer.1.attention.self.value"
RESULT_KEYS = {"scope", "layer", "delta", "k", "width", "accuracy", "output_change"}
REPORT_KEYS = {"model", "format", "fit_data", "eval_data", "fit_inputs", "eval_inputs", "deltas", "layers"}
REPORT_KEYS |= {"base_accuracy", "passes", "results"}


pytestmark = pytest.mark.usefixtures("hf_offline")


@pytest.fixture(scope="session")
def bert_texts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny BERT sequence classifier (3 classes) with its tokenizer, and a `datasets` folder of labelled texts."""
    root = tmp_path_factory.mktemp("project_hf")
    write_bert(root / "bert")
    texts, labels = random_texts(N_TEXTS)
    datasets.Dataset.from_dict({"text": texts, "label": labels}).save_to_disk(str(root / "texts"))
    return root / "bert", root / "texts"


_REPORTS: dict[Path, dict[str, Any]] = {}


def bert_report(run_cli: Callable[..., Any], model: Path, texts: Path) -> dict[str, Any]:
    """One `project` run (cached) at deltas 0.99 and 1.0, batches of 8 (padded to the longest text of each)."""
    if model not in _REPORTS:
        args = ("--data", texts, "--delta", "0.99", "--delta", "1.0", "--batch-size", "8", "-f", "json", "-q")
        result = run_cli("project", model, *args)
        assert result.code == 0, result.stderr
        _REPORTS[model] = json.loads(result.stdout)
    return _REPORTS[model]


def alone_batches(model_dir: Path) -> list[dict[str, torch.Tensor]]:
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    texts, _ = random_texts(N_TEXTS)
    return [dict(tokenizer([text], return_tensors="pt")) for text in texts]


def test_bert_report_schema_and_k_match_analyze_and_numpy(
    run_cli: Callable[..., Any], bert_texts: tuple[Path, Path]
) -> None:
    report = bert_report(run_cli, *bert_texts)
    assert set(report) == REPORT_KEYS and report["format"] == "hf"
    assert report["fit_inputs"] == report["eval_inputs"] == N_TEXTS and report["deltas"] == [0.99, 1.0]
    assert all(set(r) == RESULT_KEYS for r in report["results"])
    assert len(report["layers"]) == 14 and [x["output"] for x in report["layers"]] == [False] * 13 + [True]
    model, texts = bert_texts
    analyzed = run_cli("analyze", model, "--data", texts, "--sequence-method", "tokens", "--no-store", "-f", "json")
    assert analyzed.code == 0, analyzed.stderr
    want_k = {x["name"]: x["k"] for x in json.loads(analyzed.stdout)["layers"]}
    # Independent: every text alone, every real token a sample, numpy float64 eigenvalues.
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(model).eval()
    batches = alone_batches(model)
    outputs = hooked_outputs(hf, batches, (torch.nn.Linear,))
    masks = [b["attention_mask"] for b in batches]
    tokens = sum(int(m.sum()) for m in masks)
    layers = {x["name"]: x for x in report["layers"]}
    for r in report["results"]:
        if r["scope"] != "layer" or r["delta"] != 0.99:
            continue
        name = r["layer"]
        outs = outputs[name]
        per_token = outs[0].ndim == 3  # the pooler and classifier give one row per text
        samples = masked_samples(outs, masks, "tokens") if per_token else torch.cat(outs).double().numpy()
        assert layers[name]["fit_samples"] == samples.shape[0] == (tokens if per_token else N_TEXTS)
        assert r["k"] == numpy_k(samples, 0.99), name
        assert r["k"] == want_k[name], name
    # delta 1.0: where k = d the projection is the identity, the outputs are unchanged and cost no pass; where
    # the real tokens span fewer than d directions (k = their rank) they lie in the kept subspace, so the
    # outputs change by float rounding only.
    full = [r for r in report["results"] if r["delta"] == 1.0]
    assert all(r["accuracy"] == report["base_accuracy"] and r["output_change"] < 1e-6 for r in full)
    identity = [r for r in full if r["scope"] == "layer" and r["k"] == r["width"]]
    assert len(identity) >= 4 and all(r["output_change"] == 0.0 for r in identity)
    variants = {(r["layer"], r["k"]) for r in report["results"] if r["scope"] == "layer" and r["k"] != r["width"]}
    inner = {r["delta"]: r["k"] for r in report["results"] if r["scope"] == "all"}
    assert inner[1.0] == {r["layer"]: r["k"] for r in full if r["layer"] not in (None, "classifier")}
    # base, fit, each projected (layer, k), and all inner layers at once per delta (they differ here)
    assert report["passes"] == 2 + len(variants) + 2


def test_bert_projection_of_one_layer_matches_numpy(run_cli: Callable[..., Any], bert_texts: tuple[Path, Path]) -> None:
    model, _ = bert_texts
    report = bert_report(run_cli, *bert_texts)
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(model).eval()
    batches = alone_batches(model)
    samples = masked_samples(
        hooked_outputs(hf, batches, (torch.nn.Linear,))[LAYER], [b["attention_mask"] for b in batches], "tokens"
    )
    _, vectors = np.linalg.eigh(np.cov(samples, rowvar=False))
    k = numpy_k(samples, 0.99)
    basis = vectors[:, ::-1][:, :k]
    mean, matrix = samples.mean(axis=0), basis @ basis.T

    def project(module: torch.nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        z = out.double().numpy()
        return torch.from_numpy(mean + (z - mean) @ matrix).to(out.dtype)

    layer = dict(hf.named_modules())[LAYER]
    with torch.no_grad():
        base = np.concatenate([hf(**b).logits.double().numpy() for b in batches])
        handle = layer.register_forward_hook(project)
        try:
            projected = np.concatenate([hf(**b).logits.double().numpy() for b in batches])
        finally:
            handle.remove()
    change = np.linalg.norm(projected - base) / np.linalg.norm(base)
    _, names = random_texts(N_TEXTS)
    labels = np.searchsorted(sorted(set(names)), names)  # string labels: indices into their sorted vocabulary
    (result,) = [r for r in report["results"] if r["layer"] == LAYER and r["delta"] == 0.99]
    assert 0 < k < 32 and result["k"] == k
    assert change > 1e-4 and result["output_change"] == pytest.approx(change, rel=5e-3)
    assert report["base_accuracy"] == pytest.approx(np.mean(base.argmax(axis=1) == labels))
    assert result["accuracy"] == pytest.approx(np.mean(projected.argmax(axis=1) == labels))


def test_timm_resnet18_state_dict(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file(timm.create_model("resnet18", num_classes=10, in_chans=1).state_dict(), tmp_path / "r18.safetensors")
    arch = ("--arch", "timm:resnet18", "--arch-kwargs", "num_classes=10,in_chans=1")
    data = ("--data", "digits", "--image-size", "32", "--max-samples", "16", "--batch-size", "16")
    result = run_cli("project", tmp_path / "r18.safetensors", *arch, *data, "--delta", "0.9", "-f", "json", "-q")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    layers = report["layers"]
    assert layers[0]["name"] == "conv1" and layers[-1]["name"] == "fc" and layers[-1]["output"]
    assert layers[0]["fit_samples"] == 16 * 16 * 16  # conv1 (stride 2) per position: 16 x 16 of every image
    single = [r for r in report["results"] if r["scope"] == "layer"]
    assert len(single) == len(layers) == 21 and all(1 <= r["k"] <= r["width"] for r in single)
    assert report["passes"] == 2 + sum(r["k"] < r["width"] for r in single) + 1
    (every,) = [r for r in report["results"] if r["scope"] == "all"]
    assert every["output_change"] > 0 and 0 <= every["accuracy"] <= 1
