"""Data-free analyses of a checkpoint's weights: the Singular Value Representation and weight spectra.

Nothing here needs data: ``chain`` finds which layer feeds which, ``matrices`` turns weights into
matrices, ``svr`` and ``esd`` do the maths in float64, ``render`` and ``graphml`` present the results.
"""

from satcli.weights.esd import layer_weight_spectra

__all__ = ["layer_weight_spectra"]
