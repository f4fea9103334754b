"""`satcli.lightning.SaturationCallback`: the Lightning callback under a short name.

Its own module so that `import satcli` never imports lightning; importing this one does (and says which
extra to install when it is missing). The implementation lives in `satcli.training.lightning`.
"""

from __future__ import annotations

from satcli.training.lightning import SaturationCallback

__all__ = ["SaturationCallback"]
