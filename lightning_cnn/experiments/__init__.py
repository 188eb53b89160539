"""Tools that run many fits: the shared runner, k-fold cross-validation and hyper-parameter search."""
