"""What the tools that run many fits share: the runner of one fit, and the study storage of a search."""
