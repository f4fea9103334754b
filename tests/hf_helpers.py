"""Tiny Hugging Face models and tokenizers built on the spot, so the tests never touch the network."""

from __future__ import annotations

from pathlib import Path

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


def token_batch(n: int = 2, length: int = 6) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(5, len(VOCAB), (n, length), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
