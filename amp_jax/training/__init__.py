"""Training a run: the loop (``trainer``), its run folder (checkpoints, metrics, the saved config read back) and
moving runs between machines (parameter files, packaging, importing a GPU run)."""
