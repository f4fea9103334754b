"""Tiny Hugging Face models and tokenizers built on the spot, so the tests never touch the network."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB += ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "good", "bad"]


def tiny_bert_config(**overrides: object) -> object:
    from transformers import BertConfig

    settings: dict[str, object] = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "vocab_size": len(VOCAB),
        "max_position_embeddings": 64,
    }
    settings.update(overrides)
    return BertConfig(**settings)


def write_tokenizer(folder: Path, padding_side: str = "right") -> object:
    """A fast WordPiece tokenizer over VOCAB, saved into folder (created if missing)."""
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizerFast(vocab={token: index for index, token in enumerate(VOCAB)}, padding_side=padding_side)
    tokenizer.save_pretrained(folder)
    return tokenizer


def write_bert(folder: Path, *, head: bool = True, num_labels: int = 3, tokenizer: bool = True) -> torch.nn.Module:
    """A tiny BERT saved with save_pretrained: with a classification head (architectures set) or a base model."""
    from transformers import BertForSequenceClassification, BertModel

    torch.manual_seed(0)
    if head:
        model = BertForSequenceClassification(tiny_bert_config(num_labels=num_labels))
    else:
        model = BertModel(tiny_bert_config())
    model.save_pretrained(folder)
    if not head:
        # A base model saved by save_pretrained names itself; drop that to exercise the AutoModel fallback.
        import json

        config = json.loads((folder / "config.json").read_text())
        config.pop("architectures", None)
        (folder / "config.json").write_text(json.dumps(config))
    if tokenizer:
        write_tokenizer(folder)
    return model.eval()


def write_gpt2(folder: Path) -> torch.nn.Module:
    """A tiny GPT-2 and a word-level tokenizer over VOCAB's words with an eos token but no pad token (as GPT-2's)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {word: index for index, word in enumerate(["<unk>", "<eos>", *VOCAB[5:]])}
    words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="<unk>", eos_token="<eos>")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(vocab), n_positions=64, bos_token_id=1)
    config.eos_token_id = 1
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def token_batch(n: int = 2, length: int = 6) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(5, len(VOCAB), (n, length), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


# --- references for the numbers: plain forward hooks and numpy float64, no satcli code ------------------


def random_texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """n texts of 1 to 9 words from VOCAB's words, and a string label per text."""
    import random

    rng = random.Random(seed)
    words = VOCAB[5:]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 9))) for _ in range(n)]
    return texts, [rng.choice(["neg", "neutral", "pos"]) for _ in range(n)]


def hooked_outputs(
    model: torch.nn.Module, batches: list[dict[str, torch.Tensor]] | list[torch.Tensor], kinds: tuple[type, ...]
) -> dict[str, list[torch.Tensor]]:
    """Every output of the modules of the given classes, per batch, from plain forward hooks."""
    outputs: dict[str, list[torch.Tensor]] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, kinds):
            hook = lambda m, a, out, name=name: outputs.setdefault(name, []).append(out.detach().clone())  # noqa: E731
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for batch in batches:
                model(**batch) if isinstance(batch, dict) else model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def masked_samples(outputs: list[torch.Tensor], masks: list[torch.Tensor], method: str) -> np.ndarray:
    """(n, d) float64 samples of (B, T, d) outputs from real tokens only: mean, last real token, or every token."""
    rows = []
    for out, mask in zip(outputs, masks, strict=True):
        values, real = out.double().numpy(), mask.numpy().astype(bool)
        for b in range(values.shape[0]):
            tokens = values[b][real[b]]
            if method == "mean":
                rows.append(tokens.mean(axis=0, keepdims=True))
            elif method == "last":
                rows.append(tokens[-1:])
            else:
                rows.append(tokens)
    return np.concatenate(rows)


def numpy_k(samples: np.ndarray, delta: float = 0.99) -> int:
    """k of METHOD.md sec. 1 from numpy's float64 covariance eigenvalues."""
    values = np.clip(np.linalg.eigvalsh(np.cov(samples, rowvar=False))[::-1], 0, None)
    if values.sum() == 0:
        return 0
    return int(np.searchsorted(np.cumsum(values) / values.sum(), delta) + 1)


def stored_covariances(store: Path) -> dict[str, np.ndarray]:
    with h5py.File(store, "r") as f:
        layers = f["checkpoints/0000/layers"]
        # schema 3 keeps m2 (with --keep-moments); the covariance is m2 / (n - 1)
        return {
            layers[key].attrs["name"]: layers[key]["m2"][()] / (int(layers[key].attrs["samples"]) - 1) for key in layers
        }


def analyze(run_cli: Callable[..., Any], model: Path, data: Path, store: Path, *args: str) -> dict[str, Any]:
    result = run_cli("analyze", model, "--data", data, "--store", store, "-f", "json", "-q", "--keep-moments", *args)
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


# Float32 forward passes are not invariant to batching (padding changes the attention's summation order), so a
# reference with one batching matches satcli with another only to within the noise measured between batchings.
NOISE_FACTOR = 4
# A floor for when two batchings happen to agree exactly: float32 rounding of values summed over many inputs.
FLOAT32_FLOOR = 64 * float(np.finfo(np.float32).eps)


def noise_tolerance(reference: np.ndarray | float, rebatched: np.ndarray | float) -> float:
    """Absolute tolerance for a number from float32 activations: a few times its spread between two batchings
    of the same forward pass (measured), at least FLOAT32_FLOOR relative to its size."""
    spread = float(np.max(np.abs(np.asarray(reference) - np.asarray(rebatched))))
    return max(NOISE_FACTOR * spread, FLOAT32_FLOOR * float(np.max(np.abs(reference))))


def assert_matches_reference(
    record: dict[str, Any],
    store: Path,
    reference: dict[str, np.ndarray],
    rebatched: dict[str, np.ndarray] | None = None,
) -> None:
    """satcli's stored covariances and k against numpy's on the reference samples. With `rebatched` (the same
    samples from the forward pass batched as satcli batched it) the tolerance is their measured float32 noise,
    and k may be either one's where the noise moves it across a threshold; without, 1e-4 of the largest entry."""
    covariances = stored_covariances(store)
    assert [layer["name"] for layer in record["layers"]] == list(reference)  # forward order, every Linear
    for layer in record["layers"]:
        samples = reference[layer["name"]]
        want = np.cov(samples, rowvar=False)
        assert layer["samples"] == samples.shape[0]
        if rebatched is None:
            atol, ks = 1e-4 * np.abs(want).max(), {numpy_k(samples)}
        else:
            other = rebatched[layer["name"]]
            atol = noise_tolerance(want, np.cov(other, rowvar=False))
            ks = {numpy_k(samples), numpy_k(other)}
        np.testing.assert_allclose(covariances[layer["name"]], want, rtol=0, atol=atol)
        assert layer["k"] in ks, layer["name"]
