"""Round sizing of `kp fuzz` (kernelprop.fuzz.next_examples): a third of the time left, and
never a round whose pytest restart costs more than RESTART_SHARE of it."""
from kernelprop.fuzz import RESTART_SHARE, next_examples


def test_round_is_a_third_of_the_time_left_when_restarts_are_cheap():
    # 1 s restart, 90 s of tests for 100 examples; 900 s left: a 300 s round, 299 s of tests
    assert next_examples(100, 91.0, 900.0, False, 90.0) == int(100 * 299 / 90)
    assert next_examples(10, 10.0, 900.0, False, 9.0) == 40  # at most 4x the last round


def test_round_lasts_twenty_restarts_when_a_third_is_too_short():
    # 3 s restart, 31 s of tests for 10 examples, 146 s left: a third (49 s) would spend 6% on the
    # restart, so the round gets 3 / RESTART_SHARE = 60 s: 57 s of tests
    assert next_examples(10, 34.0, 146.0, False, 31.0) == int(10 * (3 / RESTART_SHARE - 3) / 31)
    # a 10 s restart with 90 s left: the round runs to the deadline (90 s), not 200 s
    assert next_examples(40, 30.0, 90.0, False, 20.0) == int(40 * (90 - 10) / 20)
