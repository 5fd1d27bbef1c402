"""Inference on whole radiographs: tiled upscaling, model loading, writers."""
