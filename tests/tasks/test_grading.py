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


def test_math_verify_decides_what_the_fast_paths_cannot():
    assert grade("\\boxed{x = 2}", "2")
    assert grade("\\boxed{\\sqrt{2}/2}", "\\frac{\\sqrt{2}}{2}")
    assert not grade("\\boxed{x = 3}", "2")
    assert grading.GRADER.timeouts == grading.GRADER.errors == 0


@pytest.mark.parametrize("prediction, answer, ok", [
    ("\\boxed{1e-3}", "0.001", True),                 # scientific notation is a plain number
    ("\\boxed{2.5E2}", "250", True),
    ("\\boxed{0.\\overline{3}}", "1/3", True),        # a repeating decimal is exact
    ("\\boxed{0.1\\bar{6}}", "\\frac{1}{6}", True),
    ("\\boxed{0.\\overline{3}}", "0.333", False),
])
def test_more_plain_numbers(prediction, answer, ok):
    assert grade(prediction, answer) is ok


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


@pytest.fixture
def grader_of():
    made = []

    def make(fn: str, **kw):
        g = Grader(equal=f"grading_workers:{fn}", **kw)
        g.warm()
        made.append(g)
        return g

    yield make
    for g in made:
        g.close()


def test_a_slow_call_is_answered_at_its_deadline_and_counted(grader_of):
    grader = grader_of("slow", workers=1)
    assert grader("\\boxed{x=2}", "x=2 ", timeout_s=30) is True  # a fresh worker answers (and is warm)
    start = time.perf_counter()
    assert grader("\\boxed{x=2}", "2", timeout_s=0.3) is False
    assert time.perf_counter() - start < 1.3
    assert (grader.timeouts, grader.skipped, grader.errors) == (1, 0, 0)


def test_a_call_stuck_in_c_code_is_killed_and_the_next_call_is_served(grader_of):
    grader = grader_of("hang_in_c", workers=1)
    start = time.perf_counter()
    assert grader("\\boxed{x}", "1", timeout_s=1.0) is False
    assert time.perf_counter() - start < 1.0 + 3  # the deadline holds although the worker never returns
    assert grader.timeouts == 1
    assert grader("\\boxed{2}", "2")  # the fast path still answers, and a replacement worker is starting


def test_a_worker_exception_is_a_wrong_answer(grader_of):
    grader = grader_of("boom", workers=1)
    assert grader("\\boxed{x=2}", "2", timeout_s=30) is False
    assert grader.errors == 1


@pytest.mark.parametrize("expr", ["9^{9^{9^{9}}}", "10^{10^{10}}", "1000000!", "2^{1000000}", "{" * 40 + "1" + "}" * 40,
                                  "x" * 1000])
def test_pathological_expressions_never_reach_sympy(expr):
    assert grading.too_costly(expr)
    start = time.perf_counter()
    assert grade(f"\\boxed{{{expr}}}", "1") is False
    assert time.perf_counter() - start < 0.5


PATHOLOGICAL = ["9^{9^{9^{9}}}", "10^{10^{10}}", "1000000!", "{" * 5000 + "1" + "}" * 5000, "x=2", "\\sqrt{2}/2"]


def test_every_verdict_arrives_within_the_deadline_from_threads():
    grading.GRADER.warm()
    deadline, latencies = 2.0, []

    def work(expr):
        t0 = time.perf_counter()
        grade(f"\\boxed{{{expr}}}", "1", timeout_s=deadline)
        latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=work, args=(e,)) for e in PATHOLOGICAL * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(latencies) == len(threads) and max(latencies) < deadline + 3, latencies


def test_every_verdict_arrives_within_the_deadline_in_two_processes():
    import subprocess
    import sys

    code = (
        "import threading, time\n"
        "from mmthink.tasks.grading import grade, GRADER\n"
        "GRADER.warm()\n"
        f"exprs = {PATHOLOGICAL!r}\n"
        "worst = 0.0\n"
        "for e in exprs:\n"
        "    t0 = time.perf_counter(); grade('\\\\boxed{' + e + '}', '1', timeout_s=2.0)\n"
        "    worst = max(worst, time.perf_counter() - t0)\n"
        "print(worst)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    worst = [float(p.communicate(timeout=120)[0].split()[-1]) for p in procs]
    assert max(worst) < 2.0 + 3, worst


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
