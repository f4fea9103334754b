"""Data-free receptive fields per tracked layer and the layers past the input's border (`satcli rf`)."""
