"""Attention implementations tests/test_coverage.py's reach check runs besides the bundled kernels
(it collects REACH_IMPLS of every tests/reach_<op>.py: {name: {op kind: --impl target}}).

fixed_tile_64: attention with a fixed tile of 64 and no recipe keyword (the fixed64_* mutants'
base), so the multi_tile class must reach 2-4 tiles of 64 from its declared recipe."""

REACH_IMPLS = {"fixed_tile_64": {"sparse_attention": "impls/mutants/attention.py:fixed_tile_64"}}
