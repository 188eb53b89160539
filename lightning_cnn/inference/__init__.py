"""Trained runs put to use: loading a checkpoint with its preprocessing, and stacking several runs' outputs."""
