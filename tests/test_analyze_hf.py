"""`satcli analyze` / `layers` on Hugging Face text models: every number against numpy float64 from plain hooks.

The reference runs the model with transformers alone, pools each (B, T, d) output over the real tokens in
numpy (METHOD.md sec. 8) and takes numpy's covariance and eigenvalues; satcli's covariance is read from its
store with h5py and its k from the JSON output.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hf_helpers import (
    analyze,
    assert_matches_reference,
    hooked_outputs,
    masked_samples,
    noise_tolerance,
    random_texts,
    write_bert,
    write_tokenizer,
)

datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")

N_TEXTS = 64


pytestmark = pytest.mark.usefixtures("hf_offline")


@pytest.fixture(scope="session")
def text_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny BERT with a right-padding tokenizer, the same weights with a left-padding one, and a text set."""
    root = tmp_path_factory.mktemp("hf_text")
    write_bert(root / "bert")
    shutil.copytree(root / "bert", root / "bert_left")
    write_tokenizer(root / "bert_left", padding_side="left")
    texts, labels = random_texts(N_TEXTS)
    datasets.Dataset.from_dict({"text": texts, "label": labels}).save_to_disk(str(root / "texts"))
    return {"bert": root / "bert", "bert_left": root / "bert_left", "texts": root / "texts", "root": root}


@functools.cache
def reference_samples(model_dir: Path, method: str, batch_size: int) -> dict[str, np.ndarray]:
    """Per Linear layer, the (n, d) float64 samples from transformers + hooks, batches padded by the tokenizer."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    texts, _ = random_texts(N_TEXTS)
    batches = [
        dict(tokenizer(texts[i : i + batch_size], padding="longest", return_tensors="pt"))
        for i in range(0, N_TEXTS, batch_size)
    ]
    outputs = hooked_outputs(model, batches, (torch.nn.Linear,))
    masks = [batch["attention_mask"] for batch in batches]
    return {
        name: masked_samples(outs, masks, method) if outs[0].ndim == 3 else torch.cat(outs).double().numpy()
        for name, outs in outputs.items()
    }


@pytest.mark.parametrize(("method", "batch_size"), [("mean", 7), ("mean", 64), ("last", 7), ("tokens", 5)])
def test_bert_numbers_match_masked_hooks(
    run_cli: Callable[..., Any], text_models: dict[str, Path], tmp_path: Path, method: str, batch_size: int
) -> None:
    store = tmp_path / "s.h5"
    record = analyze(
        run_cli,
        text_models["bert"],
        text_models["texts"],
        store,
        "--sequence-method",
        method,
        "--batch-size",
        str(batch_size),
    )
    # The reference runs every text alone (no padding at all): padding must never enter satcli's numbers, beyond
    # the float32 noise measured between that reference and one batched (and padded) as satcli batched it.
    alone = reference_samples(text_models["bert"], method, batch_size=1)
    rebatched = reference_samples(text_models["bert"], method, batch_size=batch_size)
    assert_matches_reference(record, store, alone, rebatched)
    assert record["model_format"] == "hf" and len(record["layers"]) == 14


def test_left_padding_moves_bert_tokens_and_satcli_pads_on_the_tokenizers_side(
    run_cli: Callable[..., Any], text_models: dict[str, Path], tmp_path: Path
) -> None:
    alone = reference_samples(text_models["bert"], "mean", batch_size=1)
    left = reference_samples(text_models["bert_left"], "mean", batch_size=7)
    name = "bert.encoder.layer.1.output.dense"
    # Absolute positions: left padding shifts the real tokens, so their outputs change.
    assert np.abs(left[name] - alone[name]).max() > 0.1 * np.abs(alone[name]).max()
    store = tmp_path / "left.h5"
    record = analyze(run_cli, text_models["bert_left"], text_models["texts"], store, "--batch-size", "7")
    assert_matches_reference(record, store, left)
    right = analyze(run_cli, text_models["bert"], text_models["texts"], tmp_path / "right.h5", "--batch-size", "7")
    assert [layer["k"] for layer in right["layers"]] != [layer["k"] for layer in record["layers"]]


def test_class_spectra_with_string_labels(
    run_cli: Callable[..., Any], text_models: dict[str, Path], tmp_path: Path
) -> None:
    record = analyze(run_cli, text_models["bert"], text_models["texts"], tmp_path / "c.h5", "--batch-size", "16")
    # Texts alone (no padding), and batched as satcli batched them: their spread is the float32 noise of the pass.
    alone = reference_samples(text_models["bert"], "mean", batch_size=1)
    rebatched = reference_samples(text_models["bert"], "mean", batch_size=16)
    _, names = random_texts(N_TEXTS)
    labels = np.array(names)

    def between_share(x: np.ndarray) -> float:
        mu = x.mean(axis=0)
        total = ((x - mu) ** 2).sum() / len(x)
        between = sum((labels == c).mean() * ((x[labels == c].mean(axis=0) - mu) ** 2).sum() for c in set(names))
        return float(between / total)

    for layer in record["layers"]:
        want = between_share(alone[layer["name"]])
        tolerance = noise_tolerance(want, between_share(rebatched[layer["name"]]))
        classes = layer["classes"]
        assert classes["num_classes"] == 3
        assert abs(classes["between_share"] - want) <= tolerance, (layer["name"], classes["between_share"], want)


def test_gpt2_conv1d_layers_with_a_tokenizer_folder(
    run_cli: Callable[..., Any], text_models: dict[str, Path], tmp_path: Path
) -> None:
    torch.manual_seed(1)
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=16, n_positions=32)
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(tmp_path / "gpt2")
    model = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2").eval()
    store = tmp_path / "g.h5"
    tokenizer_dir = text_models["bert"]
    options = ("--tokenizer", str(tokenizer_dir), "--sequence-method", "last")
    record = analyze(run_cli, tmp_path / "gpt2", text_models["texts"], store, *options)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    texts, _ = random_texts(N_TEXTS)
    # Every text alone, with all the tokenizer gives (GPT-2 embeds token_type_ids too, as satcli passes them).
    batches = [dict(tokenizer([text], return_tensors="pt")) for text in texts]
    conv1d = transformers.pytorch_utils.Conv1D
    outputs = hooked_outputs(model, batches, (conv1d, torch.nn.Linear))
    reference = {
        name: masked_samples(outs, [b["attention_mask"] for b in batches], "last") for name, outs in outputs.items()
    }
    assert [layer["type"] for layer in record["layers"][:4]] == ["Conv1D"] * 4
    assert record["layers"][0]["width"] == 96  # c_attn: query, key and value of 32 each
    assert_matches_reference(record, store, reference)


def test_layers_lists_a_hf_model_with_globs(run_cli: Callable[..., Any], text_models: dict[str, Path]) -> None:
    result = run_cli(
        "layers", text_models["bert"], "--data", text_models["texts"], "--layers", "bert.encoder.layer.*.output.dense"
    )
    assert result.code == 0, result.stderr
    assert "4 trackable layers, forward order" in result.stdout
    assert "bert.encoder.layer.1.attention.output.dense" in result.stdout and "intermediate" not in result.stdout


def test_hub_model_missing_from_cache_is_one_line(
    run_cli: Callable[..., Any], text_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    result = run_cli("analyze", "hf:nobody/no-such-model", "--data", text_models["texts"], "--no-store")
    assert result.code == 2
    assert result.stderr.startswith("error: model nobody/no-such-model is not in the local Hugging Face cache")
    assert "hf download nobody/no-such-model" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.rstrip().endswith("or pass --download")


def test_a_folder_without_a_tokenizer_is_one_complete_line(
    run_cli: Callable[..., Any], text_models: dict[str, Path], tmp_path: Path
) -> None:
    empty = tmp_path / "no-tokenizer"
    empty.mkdir()
    # tokenizer files that do not load (a folder without any is refused earlier, naming --tokenizer)
    (empty / "tokenizer_config.json").write_text('{"tokenizer_class": "NoSuchTokenizerFast"}')
    try:
        transformers.AutoTokenizer.from_pretrained(empty, local_files_only=True)
    except Exception as exc:  # transformers' own words, which may span lines ("... from one of:\n(1) ...")
        words = str(exc).split()
    else:
        pytest.fail("transformers loaded a tokenizer from an empty folder")
    result = run_cli("analyze", text_models["bert"], "--data", text_models["texts"], "--tokenizer", empty, "--no-store")
    assert result.code == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot load a tokenizer from {empty}") and line.split()[-len(words) :] == words


def test_off_a_terminal_tables_keep_names_whole_unless_columns_is_set(
    run_cli: Callable[..., Any], text_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    longest = "bert.encoder.layer.0.attention.output.dense"
    args = ("analyze", text_models["bert"], "--data", text_models["texts"], "--no-store", "-q")
    monkeypatch.delenv("COLUMNS")  # stdout is captured, so not a terminal: like a CI log
    result = run_cli(*args)
    assert result.code == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.lstrip()[:2].strip().isdigit()]
    assert len(rows) == 14 and f" 4  {longest}  Linear" in result.stdout
    rule = next(line for line in result.stdout.splitlines() if set(line) == {"─"})
    assert len(rule) > 80 and max(len(line.rstrip()) for line in rows) <= len(rule)
    layers = run_cli("layers", text_models["bert"])
    assert layers.code == 0 and f"{longest}  Linear" in layers.stdout
    monkeypatch.setenv("COLUMNS", "80")  # an explicit width wins: names fold to fit it
    result = run_cli(*args)
    assert result.code == 0 and longest not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_check_takes_the_text_options(run_cli: Callable[..., Any], text_models: dict[str, Path]) -> None:
    data = ("--data", text_models["texts"], "--input-column", "text", "--label-column", "label", "--max-length", "6")
    result = run_cli(
        "check",
        f"hf:{text_models['bert']}",
        *data,
        "--fail-on",
        "none",
        "--max-average",
        "1",
        "--allow-undersampled",
        "-f",
        "json",
        "-q",
    )
    assert result.code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["passed"] and record["model_format"] == "hf"
    assert record["layers"][0]["classes"]["num_classes"] == 3


def test_default_store_of_a_hub_model_goes_to_the_current_folder(text_models: dict[str, Path]) -> None:
    from satcli.cli.analyze import default_store_path

    assert default_store_path(Path("hf:org/name")) == Path("org--name.satcli.h5")
    folder = text_models["bert"]
    assert default_store_path(Path(f"hf:{folder}")) == folder.with_name("bert.satcli.h5")
    assert default_store_path(folder) == folder.with_name("bert.satcli.h5")
