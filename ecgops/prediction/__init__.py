"""Prediction on whole records: per-beat annotation (``ecgops annotate``)."""
