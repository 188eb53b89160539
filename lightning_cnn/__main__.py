"""``python -m lightning_cnn`` runs the command line."""

from lightning_cnn.commands import main

main()
