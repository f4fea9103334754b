"""Run satcli as ``python -m satcli``."""

from satcli.cli.main import entry

entry()
