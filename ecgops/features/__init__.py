"""Beat features: zero-padding strip (padding.py) and time-series feature sets (tsfeatures.py)."""
