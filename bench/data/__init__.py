"""Data: datasets, splits and the training augmentation."""
