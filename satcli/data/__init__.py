"""Data specs: turn `--data SPEC` into the normalized input tensors that checkpoints are scored on.

Specs: the embedded `digits`; the torchvision data sets `cifar10`, `cifar100`, `mnist`, `fashion-mnist` and
`svhn` under a data root; `folder:PATH` image trees; `.npz` / `.pt` / `.h5` array files; and, with the `hf`
extra, `.parquet` / `.jsonl` / `.csv` tables, `save_to_disk` folders and `hf:NAME[:SPLIT]`. Files on disk
are untrusted input: nothing here runs code found in them (CIFAR pickles go through a restricted
unpickler, `.pt` files through `torch.load(weights_only=True)`, `.npz` files with `allow_pickle=False`).

Modules: `source` (DataOptions, DataSource), `spec` (open_data), `common` (transforms, in-memory sets),
`builtin` (digits), `vision` (CIFAR, MNIST, SVHN), `folder` (image trees), `arrays` (array files),
`hf` (save_to_disk folders, hf:NAME), `tables` (parquet, jsonl, csv), `rows` (columns and labels of those),
`collate` (tokenizing text, processing images into Batches).
"""

from satcli.data.arrays import ARRAY_KEYS, ARRAY_SUFFIXES
from satcli.data.builtin import DIGITS_MEAN, DIGITS_SPLITS, DIGITS_STD
from satcli.data.common import NORMALIZATION
from satcli.data.rows import INPUT_COLUMNS, LABEL_COLUMNS
from satcli.data.source import Batch, DataOptions, DataSource, default_data_root
from satcli.data.spec import ACCEPTED_SPECS, open_data
from satcli.data.tables import TABLE_SUFFIXES
from satcli.data.vision import TORCHVISION_SPLITS

__all__ = [
    "ACCEPTED_SPECS",
    "ARRAY_KEYS",
    "ARRAY_SUFFIXES",
    "DIGITS_MEAN",
    "DIGITS_SPLITS",
    "DIGITS_STD",
    "INPUT_COLUMNS",
    "LABEL_COLUMNS",
    "NORMALIZATION",
    "TABLE_SUFFIXES",
    "TORCHVISION_SPLITS",
    "Batch",
    "DataOptions",
    "DataSource",
    "default_data_root",
    "open_data",
]
