"""Per-layer analyses the engine feeds: each a plug-in with update / state / merge / finish."""
