"""``python -m lightning_cnn`` runs the command line."""

from lightning_cnn.cli import main

main()
