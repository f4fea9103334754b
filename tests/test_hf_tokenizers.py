"""Tokenizers that do not fit the model are refused; one without a pad token pads with its eos token.

A model directory without tokenizer files, a tokenizer much smaller than the model's embedding and one that
maps most words to its unknown token would give numbers computed from the wrong ids: each is one line and
exit 2. A GPT-2-style tokenizer (eos, no pad) pads with eos; the numbers are checked against numpy on the
same model run one text at a time, without any padding.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from hf_helpers import VOCAB, hooked_outputs, numpy_k, random_texts, stored_covariances, write_bert, write_gpt2

datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("hf_offline")

N_TEXTS = 48


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf_tokenizers")
    write_bert(root / "bare", tokenizer=False)
    write_gpt2(root / "gpt2")
    texts, labels = random_texts(N_TEXTS)
    datasets.Dataset.from_dict({"text": texts, "label": labels}).save_to_disk(str(root / "texts"))
    return {"bare": root / "bare", "gpt2": root / "gpt2", "texts": root / "texts", "root": root}


def one_error_line(result: Any) -> str:
    assert result.code == 2, (result.code, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["analyze", "check", "layers", "project"])
def test_model_directory_without_tokenizer_files_is_refused(
    run_cli: Callable[..., Any], models: dict[str, Path], command: str
) -> None:
    extra = ("--no-store",) if command == "analyze" else ()
    line = one_error_line(run_cli(command, models["bare"], "--data", models["texts"], *extra))
    assert "needs a tokenizer" in line and "--tokenizer" in line


def test_tokenizer_folder_without_tokenizer_files_is_refused(
    run_cli: Callable[..., Any], models: dict[str, Path]
) -> None:
    bert = models["root"] / "bert_ok"
    write_bert(bert)
    result = run_cli("analyze", bert, "--data", models["texts"], "--no-store", "--tokenizer", models["bare"])
    line = one_error_line(result)
    assert "holds no tokenizer files" in line and "--tokenizer" in line


def test_tokenizer_smaller_than_the_embedding_is_refused(run_cli: Callable[..., Any], models: dict[str, Path]) -> None:
    # The model embeds 40 ids; the tokenizer knows 15 of them, 5 special: 20 < 40.
    folder = models["root"] / "wide_vocab"
    write_bert(folder, tokenizer=True)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 40
    (folder / "config.json").write_text(json.dumps(config))
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    BertForSequenceClassification.from_pretrained(folder, ignore_mismatched_sizes=True).save_pretrained(folder)
    for command in ("analyze", "layers"):
        extra = ("--no-store",) if command == "analyze" else ()
        line = one_error_line(run_cli(command, folder, "--data", models["texts"], *extra))
        assert "knows 15 tokens but the model embeds 40" in line and "--tokenizer" in line


def test_tokenizer_that_does_not_know_the_words_is_refused(
    run_cli: Callable[..., Any], models: dict[str, Path]
) -> None:
    # As many tokens as the model embeds, but none of the texts' words: every word is [UNK].
    from transformers import BertTokenizerFast

    other = models["root"] / "other_words"
    other.mkdir()
    vocab = VOCAB[:5] + [f"word{i}" for i in range(len(VOCAB) - 5)]
    BertTokenizerFast(vocab={token: index for index, token in enumerate(vocab)}).save_pretrained(other)
    bert = models["root"] / "bert_for_unk"
    write_bert(bert)
    result = run_cli("analyze", bert, "--data", models["texts"], "--no-store", "--tokenizer", other)
    line = one_error_line(result)
    assert "100% of the words of the first batch to its unknown token '[UNK]'" in line and "--tokenizer" in line


def unpadded_reference(folder: Path, group: Callable[[list[list[int]]], list[list[int]]]) -> dict[str, np.ndarray]:
    """Per layer, (n, d) float64 mean-over-tokens samples of the texts, batched by `group` without padding."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    texts, _ = random_texts(N_TEXTS)
    ids = [tokenizer(text)["input_ids"] for text in texts]
    order = [i for batch in group(ids) for i in batch]
    batches = [{"input_ids": torch.tensor([ids[i] for i in batch])} for batch in group(ids)]
    kinds = (torch.nn.Linear, transformers.pytorch_utils.Conv1D)
    outputs = hooked_outputs(model, batches, kinds)
    samples = {}
    for name, outs in outputs.items():
        rows = np.concatenate([out.double().numpy().mean(axis=1) for out in outs])
        samples[name] = rows[np.argsort(order)]  # back to the texts' order
    return samples


def by_length(ids: list[list[int]]) -> list[list[int]]:
    """Indices of texts of the same token count together: batches of several texts that need no padding."""
    groups: dict[int, list[int]] = {}
    for index, row in enumerate(ids):
        groups.setdefault(len(row), []).append(index)
    return list(groups.values())


def test_gpt2_tokenizer_without_pad_token_pads_with_eos(
    run_cli: Callable[..., Any], models: dict[str, Path], tmp_path: Path
) -> None:
    store = tmp_path / "s.h5"
    texts = models["texts"]
    result = run_cli("analyze", models["gpt2"], "--data", texts, "--store", store, "-f", "json", "-q", "--keep-moments")
    assert result.code == 0, result.stderr
    assert f"{texts}: texts are padded with the eos token '<eos>'" in result.stderr
    record = json.loads(result.stdout)
    assert record["options"]["data_notes"] == [
        f"{texts}: texts are padded with the eos token '<eos>': the tokenizer has no pad token; padding is masked out"
    ]
    single = unpadded_reference(models["gpt2"], lambda ids: [[i] for i in range(len(ids))])
    grouped = unpadded_reference(models["gpt2"], by_length)
    with h5py.File(store, "r") as f:
        layers = f["checkpoints/0000/layers"]
        means = {layers[k].attrs["name"]: layers[k]["mean"][()] for k in layers}
    stored = {name: (means[name], cov) for name, cov in stored_covariances(store).items()}
    assert [layer["name"] for layer in record["layers"]] == list(single)
    for layer in record["layers"]:
        name, samples = layer["name"], single[layer["name"]]
        want_mean, want_cov = samples.mean(axis=0), np.cov(samples, rowvar=False)
        # float32 noise: how far two ways of batching the same unpadded texts move the reference itself
        noise_mean = np.abs(grouped[name].mean(axis=0) - want_mean).max()
        noise_cov = np.abs(np.cov(grouped[name], rowvar=False) - want_cov).max()
        scale = np.abs(want_cov).max()
        np.testing.assert_allclose(stored[name][0], want_mean, rtol=0, atol=10 * noise_mean + 1e-6 * scale)
        np.testing.assert_allclose(stored[name][1], want_cov, rtol=0, atol=10 * noise_cov + 1e-6 * scale)
        assert layer["samples"] == N_TEXTS
        assert layer["k"] == numpy_k(samples), name


def test_tokenizer_without_pad_or_eos_token_is_refused(run_cli: Callable[..., Any], models: dict[str, Path]) -> None:
    folder = models["root"] / "gpt2_no_eos"
    write_gpt2(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("eos_token", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    for command in ("analyze", "layers"):
        extra = ("--no-store",) if command == "analyze" else ()
        line = one_error_line(run_cli(command, folder, "--data", models["texts"], *extra))
        assert "neither a padding token nor an end-of-sequence token" in line
