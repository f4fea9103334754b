"""Sample checkpoints for satcli: a narrow, a deep/wide and a sensible model trained on the digits set."""
