"""Accuracy measurement: open-set 1:N evaluation, threshold calibration, embedding cache."""
