"""The nightly's score (kernelprop.core.verdict.Verdict.score), what hypothesis' target() climbs and
the fuzz dashboard plots: 0 for a legitimate bf16 flip, > 1 exactly where the check fails, and a
passing score of exactly 1 drawn blue."""
import torch

from kernelprop.commands import fuzz_html
from kernelprop.core.evidence import Outcome
from kernelprop.core.verdict import check_outcome


def _outcome(actual, expected=1.0, bound=2.0 ** -6, discrete=2.0 ** -7):  # exact in binary
    a = torch.tensor([actual], dtype=torch.float64)
    e = torch.tensor([expected], dtype=torch.float64)
    b = torch.tensor([bound], dtype=torch.float64)
    d = None if discrete is None else torch.tensor([discrete], dtype=torch.float64)
    return Outcome(actual=a, expected=e, bound=b, bound_doc="test bound", discrete=d)


def test_a_legitimate_flip_scores_zero_where_error_over_bound_is_large():
    verdict = check_outcome(_outcome(1 + 2.0 ** -7))  # error exactly the flip the bound allows
    assert not verdict.failing and verdict.worst == 0.5
    assert verdict.score == 0.0 and verdict.score_label == "margin"


def test_the_score_rises_beyond_the_flips_and_fails_above_one():
    inside = check_outcome(_outcome(1 + 3 * 2.0 ** -8))  # half the continuous part past the flip
    outside = check_outcome(_outcome(1 + 2.0 ** -5))
    assert inside.score == 0.5 and inside.worst == 0.75 and not inside.failing
    assert outside.score > 1 and outside.failing


def test_without_a_discrete_share_the_score_is_error_over_bound():
    verdict = check_outcome(_outcome(1 + 2.0 ** -7, discrete=None))
    assert verdict.score_label == "error/bound" and verdict.score == 0.5


def test_bitwise_checks_score_the_differing_elements():
    o = Outcome(actual=torch.tensor([1.0, 2.0]), expected=torch.tensor([1.0, 3.0]), bound=None,
                bound_doc="bit equality")
    verdict = check_outcome(o)
    assert verdict.score == 1.0 and verdict.score_label == "differing elements" and verdict.failing


def test_histogram_draws_a_passing_score_of_one_blue_and_a_failing_one_red():
    passing = fuzz_html.histogram([1.0, 0.5, 0.0], "passing")
    assert 'fill="' + fuzz_html.BAD + '"><title>' not in passing
    assert 'fill="' + fuzz_html.OK + '"><title>' in passing
    failing = fuzz_html.histogram([1.0, 1.5], "failing")
    assert 'fill="' + fuzz_html.BAD + '"><title>1 examples in' in failing
    assert "1 above 1 (failing)" in failing and "0 above 1 (failing)" in passing
