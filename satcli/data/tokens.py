"""Checks that a tokenizer fits the model and the texts before any number is computed from its tokens.

A tokenizer that does not match the model turns every text into the same few ids and gives numbers that look
fine but measure nothing, so it is refused: one whose vocabulary is smaller than the model's embedding by more
than its special tokens, or one that maps most words of the first batch to its unknown token. A tokenizer
without a padding token (GPT-2's) pads with its end-of-sequence token: the attention mask keeps padding out
of every statistic, so which id fills those positions does not change a number.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from satcli.errors import SatcliError

# Above this share of unknown tokens among the real, non-special tokens of the first batch, the tokenizer
# does not know the texts' words: every such token is the same id, and the activations carry no text.
MAX_UNKNOWN_SHARE = 0.5
# Embeddings are often padded past the tokenizer for speed (Pythia: 50277 tokens, 50304 rows; Phi-2: 50295 and
# 51200), so rows beyond the tokenizer are refused only when more than this share of the embedding is unused.
MAX_UNUSED_EMBEDDING = 0.1
FIX = "pass the model's own tokenizer with --tokenizer PATH"


def with_padding(name: str, tokenizer: Any) -> tuple[Any, str | None]:
    """The tokenizer, padding with its eos token when it has no pad token (a copy), and a note saying so."""
    if getattr(tokenizer, "pad_token", None) is not None:
        return tokenizer, None
    eos = getattr(tokenizer, "eos_token", None)
    if eos is None:
        raise SatcliError(
            f"{name}: the tokenizer has neither a padding token nor an end-of-sequence token to pad batches with; "
            f"{FIX} or one that defines pad_token"
        )
    padded = copy.deepcopy(tokenizer)
    padded.pad_token = eos
    return padded, f"texts are padded with the eos token {eos!r}: the tokenizer has no pad token; padding is masked out"


def check_vocabulary(name: str, tokenizer: Any, vocab_size: int | None) -> None:
    """Refuse a tokenizer smaller than the model's embedding by more than its special tokens and the padding."""
    if vocab_size is None:
        return
    size = len(tokenizer)
    special = len(set(getattr(tokenizer, "all_special_ids", []) or []))
    if size + special < vocab_size and size < (1 - MAX_UNUSED_EMBEDDING) * vocab_size:
        raise SatcliError(
            f"{name}: the tokenizer knows {size} tokens but the model embeds {vocab_size}; "
            f"it is not the model's tokenizer: {FIX}"
        )


def check_known_words(name: str, tokenizer: Any, inputs: dict[str, torch.Tensor]) -> None:
    """Refuse a tokenizer that maps most real, non-special tokens of a batch to its unknown token."""
    unknown = getattr(tokenizer, "unk_token_id", None)
    if unknown is None or "input_ids" not in inputs:
        return
    ids = inputs["input_ids"]
    real = inputs.get("attention_mask", torch.ones_like(ids)).bool()
    special = [i for i in getattr(tokenizer, "all_special_ids", []) or [] if i != unknown]
    if special:
        real &= ~torch.isin(ids, torch.tensor(special, dtype=ids.dtype))
    total = int(real.sum())
    if total == 0:
        return
    share = int((real & (ids == unknown)).sum()) / total
    if share > MAX_UNKNOWN_SHARE:
        raise SatcliError(
            f"{name}: the tokenizer maps {share:.0%} of the words of the first batch to its unknown token "
            f"{getattr(tokenizer, 'unk_token', None)!r}; it is not the model's tokenizer: {FIX}"
        )
