"""The engine: the batch loop over taps and analyses, and scoring many checkpoints in one call."""
