"""Adapters of third-party Triton kernels, called as their PyPI packages ship them
(requirements-plugins.txt pins the versions; docs/plugins.md walks through each declaration)."""
