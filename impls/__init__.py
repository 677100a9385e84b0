"""Implementations other than the bundled kernels: an independent torch one, and planted mutants."""
