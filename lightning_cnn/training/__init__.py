"""What runs inside a fit: callbacks, loggers, checkpoint writing, the report, the augmentation preview."""
