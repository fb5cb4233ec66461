"""Packaged facts: hardware, prices, model architectures, calibration, reference measurements."""
