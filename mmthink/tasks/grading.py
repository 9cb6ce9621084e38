"""Grade a model's answer: its last ``\\boxed{}`` against the reference answer (and, for free-form QA, ROUGE-L).

Order of checks, cheapest first:
1. the two answers are equal after light normalisation (``$``, ``\\%``, spacing, ``\\dfrac``);
2. both are plain numbers (``1,000``, ``0.5``, ``3/4``, ``\\frac{3}{4}``, ``-2.0``): compared exactly as
   fractions, and that verdict is final, so ``0.333`` is *not* ``\\frac{1}{3}`` (math-verify would round
   both to 6 digits; our toy answers are exact and wrong numbers are the common case in RL);
3. otherwise the ``math-verify`` package (sympy) decides: ``x=2`` vs ``2``, ``\\sqrt2/2`` vs ``\\frac{\\sqrt{2}}{2}``.

Timeouts. math-verify's own timeout uses SIGALRM, which raises outside the main thread, so we switch it
off (``parsing_timeout=None``, ``timeout_seconds=None``) and enforce our own deadline: each math-verify
call runs in a fresh daemon thread and we wait at most ``timeout_s`` for it. Python cannot kill a
thread, so one that overruns is *abandoned*, not stopped: it keeps a core busy until sympy returns.
Daemon threads (not a ``ThreadPoolExecutor``) because the executor joins its workers at interpreter
exit, so one runaway sympy call would hang the process on shutdown, and stuck workers would starve the
pool. To bound the damage, once ``max_stuck`` abandoned threads are still alive, math-verify is skipped
(answer graded False) until some finish. ``Grader.timeouts``, ``.skipped`` and ``.errors`` count these.
"""

from __future__ import annotations

import re
import threading
from fractions import Fraction
from typing import Optional

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")

# ---------------------------------------------------------------- extraction


def _braced(text: str, open_at: int) -> Optional[str]:
    """The text inside the brace group opening at ``text[open_at] == '{'``; None if never closed."""
    depth, i = 0, open_at
    while i < len(text):
        ch = text[i]
        if ch == "\\":  # \{ and \} are literal braces, not grouping
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i]
        i += 1
    return None


def last_boxed(text: str) -> Optional[str]:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (braces matched) or ``\\boxed 5``.

    Only the last box counts: if it is never closed (a cut-off generation) the answer is None, not an
    earlier box, since the model had not finished answering.
    """
    boxes = list(_BOX.finditer(text))
    if not boxes:
        return None
    after = boxes[-1].end()
    rest = text[after:]
    stripped = rest.lstrip(" \t")
    if stripped.startswith("{"):
        return _braced(text, after + len(rest) - len(stripped))
    if stripped is not rest and stripped:  # "\boxed 5": the token after the space
        token = re.match(r"[^\s$]+", stripped)
        return token.group(0) if token else None
    return None


# ---------------------------------------------------------------- fast paths

_DROP = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "\\$", "$", "\\%", "%", "^{\\circ}", "^\\circ")
_NUMBER = re.compile(r"-?(\d+(\.\d*)?|\.\d+)")
_THOUSANDS = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d+)?")
_SLASH = re.compile(r"(-?\d+)/(-?\d+)")
_FRAC = re.compile(r"(-?)\\frac(?:\{(-?[\d.]+)\}\{(-?[\d.]+)\}|(\d)(\d))")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm)\{([^{}]*)\}")


def normalize_answer(s: str) -> str:
    """Spacing and typography removed: what two equal answers written differently still share."""
    s = s.strip()
    for piece in _DROP:
        s = s.replace(piece, "")
    s = _TEXT.sub(r"\1", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".")


def as_number(s: str) -> Optional[Fraction]:
    """The exact value of a plain number written as an int, decimal, ``a/b`` or ``\\frac{a}{b}``."""
    s = normalize_answer(s)
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    try:
        if _NUMBER.fullmatch(s):
            return Fraction(s)
        if m := _SLASH.fullmatch(s):
            return Fraction(int(m[1]), int(m[2]))
        if m := _FRAC.fullmatch(s):
            num, den = (m[2], m[3]) if m[2] is not None else (m[4], m[5])
            value = Fraction(num) / Fraction(den)
            return -value if m[1] else value
    except (ValueError, ZeroDivisionError):
        return None
    return None


def quick_verdict(gold: str, target: str) -> Optional[bool]:
    """True/False when string or exact-number comparison settles it; None to ask math-verify."""
    g, t = normalize_answer(gold), normalize_answer(target)
    if g == t:
        return True
    if not t:
        return False
    gn, tn = as_number(gold), as_number(target)
    if gn is not None and tn is not None:
        return gn == tn
    return None


# ---------------------------------------------------------------- math-verify under our deadline


def _math_verify_equal(gold: str, target: str) -> bool:
    import math_verify.grader
    import math_verify.parser
    from math_verify import parse, verify

    # We supply the timeout ourselves (see the module docstring): silence its once-per-process warning.
    math_verify.parser.TIMEOUT_WARNING_SHOWN = math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    g = parse(f"${gold}$", parsing_timeout=None)
    t = parse(f"${target}$", parsing_timeout=None)
    return bool(g) and bool(t) and bool(verify(g, t, timeout_seconds=None))


class Grader:
    """Grades predictions; thread-safe; counts math-verify timeouts, skips and errors."""

    def __init__(self, timeout_s: float = 5.0, max_stuck: int = 4):
        self.timeout_s, self.max_stuck = timeout_s, max_stuck
        self.timeouts = self.skipped = self.errors = 0
        self._stuck: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __call__(self, prediction: str, answer: str, timeout_s: Optional[float] = None) -> bool:
        target = last_boxed(prediction)
        if target is None:
            return False
        gold = last_boxed(answer) or answer  # a reference may itself be written "\boxed{...}"
        verdict = quick_verdict(gold, target)
        if verdict is not None:
            return verdict
        return self._math_verify(gold, target, self.timeout_s if timeout_s is None else timeout_s)

    def _math_verify(self, gold: str, target: str, timeout_s: float) -> bool:
        with self._lock:
            self._stuck = [t for t in self._stuck if t.is_alive()]
            if len(self._stuck) >= self.max_stuck:
                self.skipped += 1
                return False
        result: dict = {}
        done = threading.Event()

        def work():
            try:
                result["equal"] = _math_verify_equal(gold, target)
            except Exception:  # a parser bug on odd LaTeX is a wrong answer, not a crashed run
                result["error"] = True
            finally:
                done.set()

        thread = threading.Thread(target=work, name="math-verify", daemon=True)
        thread.start()
        if not done.wait(timeout_s):
            with self._lock:
                self.timeouts += 1
                self._stuck.append(thread)
            return False
        if "error" in result:
            with self._lock:
                self.errors += 1
            return False
        return result["equal"]


GRADER = Grader()


def grade(prediction: str, answer: str, timeout_s: float = 5.0) -> bool:
    """Is the last ``\\boxed{}`` of ``prediction`` equal to ``answer``? Never raises, never hangs."""
    return GRADER(prediction, answer, timeout_s)


# ---------------------------------------------------------------- free-form answers (ROUGE-L)


def words(text: str) -> list[str]:
    # rouge_score's tokenizer: lowercase, runs of [a-z0-9] are the words.
    return re.findall(r"[a-z0-9]+", text.lower())


def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence of two sequences (dynamic programming, O(len a * len b))."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 over lowercased word tokens: F = 2PR/(P+R), P = LCS/|pred|, R = LCS/|ref|."""
    p, r = words(prediction), words(reference)
    lcs = lcs_length(p, r) if p and r else 0
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)
