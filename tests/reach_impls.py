"""Implementations tests/test_coverage.py's reach check runs besides the bundled kernels, as
{name: {op kind: --impl target}} (ops not named: bundled). A test none of whose op fixtures an
entry names runs under "bundled" only.

fixed_tile_64: attention with a fixed tile of 64 and no recipe keyword (the fixed64_* mutants'
base), so the multi_tile class must reach 2-4 tiles of 64 from its declared recipe."""

REACH_IMPLS = {"bundled": {},
               "fixed_tile_64": {"sparse_attention": "impls/mutants/attention.py:fixed_tile_64"}}
