"""Beat features: zero-padding strip (padding.py), time-series feature sets (tsfeatures.py; the
compact set's calculators in compact.py) and the RR context inputs (context.py)."""
