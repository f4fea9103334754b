"""Layer taps: find the tracked layers of a model and capture their outputs batch by batch."""

from satcli.taps.base import Taps, chosen_layers, discover, open_taps
from satcli.taps.layers import CONV, DENSE, RECURRENT, TRACKED, AffineInput, Layer, Sink, layer_kind, select
from satcli.taps.reduce import (
    CONV_METHODS,
    SEQUENCE_METHODS,
    Reduction,
    input_rows,
    output_width,
    reduce_output,
    sample_view,
)

__all__ = [
    "CONV",
    "CONV_METHODS",
    "DENSE",
    "RECURRENT",
    "SEQUENCE_METHODS",
    "TRACKED",
    "AffineInput",
    "Layer",
    "Reduction",
    "Sink",
    "Taps",
    "chosen_layers",
    "discover",
    "input_rows",
    "layer_kind",
    "open_taps",
    "output_width",
    "reduce_output",
    "sample_view",
    "select",
]
