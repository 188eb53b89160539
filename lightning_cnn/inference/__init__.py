"""Trained runs put to use: loading a checkpoint with its preprocessing, predicting image files, ensembles, export."""
