"""Pretraining: corpus preparation, self-supervised objectives, the two-stage training loop."""
