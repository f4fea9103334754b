"""The one error type domain code raises; the CLI maps it to a one-line message and exit code 2."""


class SatcliError(Exception):
    """A problem with the user's input (model, data, options, store) that ends the run cleanly."""
