"""Hypothesis strategies and the property catalogue P1-P13 (SPEC section 4)."""
