"""Metrics, plots, attention maps, calibration and the results report."""
