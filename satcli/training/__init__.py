"""satcli inside Python: results for the API, adapters from user batches and modules, and the training Monitor."""
