"""Run satcli as ``python -m satcli``."""

from satcli.cli import main

main()
