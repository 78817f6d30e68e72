"""Evaluating a finished run: the report written into its folder (``evaluate``), with plots and video."""
