"""Tiny Hugging Face and timm models and a text data set, built offline in seconds, for the examples in docs/.

    python sample_models/hf_tiny.py OUT_DIR

Writes, with fixed seeds (untrained weights: these files show the workflow, not a finding):
- OUT_DIR/bert: a 2-layer BERT (hidden size 32) with a 3-class head, saved by save_pretrained (config.json +
  model.safetensors) with a fast WordPiece tokenizer over a 30-word vocabulary;
- OUT_DIR/reviews: 400 short reviews with string labels (neg / neutral / pos), a `datasets` folder
  written by save_to_disk;
- OUT_DIR/resnet18.safetensors: timm's resnet18 for 1-channel inputs and 10 classes, for
  `--arch timm:resnet18 --arch-kwargs num_classes=10,in_chans=1` on the digits set.
Needs the hf and timm extras (pip install -e '.[hf,timm]'; the dev extra includes both).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
THINGS = ["the", "food", "service", "room", "film", "book", "staff", "view"]
WORDS = {
    "pos": ["good", "great", "lovely", "fine", "friendly"],
    "neg": ["bad", "awful", "rude", "dirty", "slow"],
    "neutral": ["was", "is", "quite", "really", "very", "and", "but", "not", "ok"],
}
SEED = 0


def reviews(n: int) -> tuple[list[str], list[str]]:
    """n reviews of 2 to 12 words; the label is the polarity of the words that carry one (neutral if tied)."""
    rng = random.Random(SEED)
    texts, labels = [], []
    for _ in range(n):
        words = [rng.choice(THINGS)]
        score = 0
        for _ in range(rng.randint(1, 11)):
            kind = rng.choice(["pos", "neg", "neutral", "neutral"])
            words.append(rng.choice(WORDS[kind] if kind != "neutral" else WORDS["neutral"] + THINGS))
            score += {"pos": 1, "neg": -1, "neutral": 0}[kind]
        texts.append(" ".join(words))
        labels.append("pos" if score > 0 else "neg" if score < 0 else "neutral")
    return texts, labels


def write_bert(folder: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    vocab = SPECIAL + sorted({w for group in WORDS.values() for w in group} | set(THINGS))
    torch.manual_seed(SEED)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
    )
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)

    import datasets
    import timm
    import transformers
    from safetensors.torch import save_file

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    write_bert(out / "bert")
    texts, labels = reviews(400)
    datasets.Dataset.from_dict({"text": texts, "label": labels}).save_to_disk(str(out / "reviews"))
    torch.manual_seed(SEED)
    resnet = timm.create_model("resnet18", num_classes=10, in_chans=1).eval()
    save_file(resnet.state_dict(), out / "resnet18.safetensors")
    print(f"wrote {out / 'bert'}, {out / 'reviews'} and {out / 'resnet18.safetensors'}")


if __name__ == "__main__":
    main()
