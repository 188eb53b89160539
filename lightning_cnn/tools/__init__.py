"""The tools of ``lightning-cnn NAME``: each module's ``main(argv)`` is one tool, built on the library around it."""
