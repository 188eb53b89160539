"""What runs inside a fit: callbacks, loggers, checkpoint writing, the report, previews, the model table."""
