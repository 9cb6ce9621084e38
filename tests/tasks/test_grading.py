import threading
import time

import pytest

from mmthink.tasks import grading
from mmthink.tasks.grading import Grader, as_number, grade, last_boxed, lcs_length, rouge_l, words


@pytest.mark.parametrize("text, content", [
    ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),                 # nested braces
    ("\\boxed{1} then \\boxed{2} and \\boxed{3}", "3"),           # the last box wins
    ("\\fbox{7}", "7"),
    ("\\boxed {x^{2}}", "x^{2}"),
    ("$\\boxed 5$", "5"),                                        # the brace-less form
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),                         # escaped braces are not grouping
    ("\\boxed{}", ""),
    ("\\boxed{4} and then \\boxed{\\frac{1}{2}", None),          # the last box is cut off
    ("the answer is 4", None),
    ("\\boxedx{3}", None),
])
def test_last_boxed(text, content):
    assert last_boxed(text) == content


@pytest.mark.parametrize("text, value", [
    ("1,000", 1000), ("-2.50", -2.5), ("3/4", 0.75), ("\\frac{3}{4}", 0.75), ("-\\dfrac{1}{8}", -0.125),
    ("\\frac12", 0.5), ("$5.", 5), ("50\\%", 50), ("1,2", None), ("x", None), ("1/0", None),
])
def test_as_number(text, value):
    assert as_number(text) == value


@pytest.mark.parametrize("prediction, answer, ok", [
    ("The answer is \\boxed{42}.", "42", True),
    ("\\boxed{0.5}", "\\frac{1}{2}", True),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("\\boxed{1,000}", "1000", True),
    ("\\boxed{12.0}", "12", True),
    ("\\boxed{\\$12}", "12", True),
    ("\\boxed{25\\%}", "25", True),
    ("\\boxed{41}", "42", False),
    ("\\boxed{0.333}", "\\frac{1}{3}", False),   # plain numbers compare exactly
    ("The answer is 42.", "42", False),           # no box
    ("\\boxed{}", "42", False),
    ("\\boxed{3}", "\\boxed{3}", True),           # a boxed reference is read the same way
])
def test_grade(prediction, answer, ok):
    assert grade(prediction, answer) is ok


def test_math_verify_decides_what_the_fast_paths_cannot(monkeypatch):
    calls = []
    real = grading._math_verify_equal
    monkeypatch.setattr(grading, "_math_verify_equal", lambda g, t: calls.append((g, t)) or real(g, t))
    assert grade("\\boxed{x = 2}", "2")
    assert grade("\\boxed{\\sqrt{2}/2}", "\\frac{\\sqrt{2}}{2}")
    assert not grade("\\boxed{x = 3}", "2")
    assert calls == [("2", "x = 2"), ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2"), ("2", "x = 3")]


def test_grading_works_outside_the_main_thread():
    # math-verify's own SIGALRM timeout would raise here; ours must not.
    results = {}

    def work():
        results["frac"] = grade("\\boxed{\\frac{2}{4}+0}", "\\frac{1}{2}")
        results["eq"] = grade("\\boxed{x=2}", "2")
        results["wrong"] = grade("\\boxed{x=5}", "2")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    assert results == {"frac": True, "eq": True, "wrong": False}


def test_a_slow_math_verify_call_times_out_and_is_counted(monkeypatch):
    monkeypatch.setattr(grading, "_math_verify_equal", lambda g, t: time.sleep(1.5) or True)
    grader = Grader()
    start = time.perf_counter()
    assert grader("\\boxed{x=2}", "2", timeout_s=0.2) is False
    assert time.perf_counter() - start < 2
    assert (grader.timeouts, grader.skipped, grader.errors) == (1, 0, 0)


def test_too_many_stuck_calls_skip_math_verify(monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(grading, "_math_verify_equal", lambda g, t: release.wait(5))
    grader = Grader(max_stuck=2)
    try:
        assert [grader("\\boxed{x=2}", "2", timeout_s=0.05) for _ in range(3)] == [False] * 3
        assert (grader.timeouts, grader.skipped) == (2, 1)
        assert grader("\\boxed{2}", "2")  # the fast path still answers
    finally:
        release.set()


def test_a_math_verify_exception_is_a_wrong_answer(monkeypatch):
    def boom(gold, target):
        raise RuntimeError("sympy choked")

    monkeypatch.setattr(grading, "_math_verify_equal", boom)
    grader = Grader()
    assert grader("\\boxed{x=2}", "2") is False
    assert grader.errors == 1


@pytest.mark.parametrize("pred, ref, want", [
    ("Paris", "paris", 1.0),
    ("the cat sat on the mat", "the cat is on the mat", 5 / 6),  # LCS "the cat on the mat"
    ("The answer is 12.", "12", 2 * 0.25 * 1 / 1.25),  # P = 1/4, R = 1
    ("a b c d", "d c b a", 0.25),  # LCS 1
    ("New Delhi", "Delhi, India", 0.5),  # LCS 1, P = R = 1/2
    ("London", "Paris", 0.0),
    ("", "Paris", 0.0),
    ("...", "Paris", 0.0),
])
def test_rouge_l_golden(pred, ref, want):
    assert rouge_l(pred, ref) == pytest.approx(want)


def test_lcs_length():
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert lcs_length([], ["a"]) == 0


def test_echo_safe_free_form_rows_share_no_graded_word_with_their_question():
    # The generator filters on the grader's own tokeniser: an answer that echoes the question cannot pass.
    from mmthink.tasks.mcq import FREEFORM_TASKS, generate_freeform

    for task in FREEFORM_TASKS:
        for r in generate_freeform(task):
            assert not set(words(r["question"])) & set(words(r["answer"]))
            assert rouge_l(r["question"], r["answer"]) == 0.0
