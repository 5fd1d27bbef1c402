"""Real-ESRGAN's second-order degradation for radiographs (see pipeline.py)."""
