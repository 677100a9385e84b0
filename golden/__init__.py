"""Golden references, precision recipes and error metrics (pure torch, CPU or GPU)."""
from golden.recipes import AttnRecipe, NormRecipe
from golden.rounding import round_to_bf16, bf16_ulp
