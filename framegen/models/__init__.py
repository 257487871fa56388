"""Models: where a `model:` block's weights are (locate), what they are before loading
(facts: configs, family, scheduler), loading them (load, checkpoints for single files,
published for the shipped configs), their fingerprints for keys, and the two bundled
models (tiny, demo). Importing this package imports no torch."""
