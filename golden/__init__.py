"""Golden references, each op's values, the error model, bounds and error metrics (pure torch, CPU or
GPU); import the submodules (kernelprop.golden.metrics, ...)."""
