"""Grade a model's answer: its last ``\\boxed{}`` against the reference answer (and, for free-form QA, ROUGE-L).

Order of checks, cheapest first:
1. the two answers are equal after light normalisation (``$``, ``\\%``, spacing, ``\\dfrac``);
2. both are plain numbers (``1,000``, ``0.5``, ``3/4``, ``\\frac{3}{4}``, ``-2.0``): compared exactly as
   fractions, and that verdict is final, so ``0.333`` is *not* ``\\frac{1}{3}`` (math-verify would round
   both to 6 digits; our toy answers are exact and wrong numbers are the common case in RL);
3. otherwise the ``math-verify`` package (sympy) decides: ``x=2`` vs ``2``, ``\\sqrt2/2`` vs ``\\frac{\\sqrt{2}}{2}``.

Timeouts. math-verify's own timeout uses SIGALRM, which raises outside the main thread, so we switch it
off (``parsing_timeout=None``, ``timeout_seconds=None``) and enforce our own deadline by running it in
worker processes (``Grader``): a call that overruns is answered False at its deadline and its worker
is killed and replaced. A thread cannot be interrupted — CPython's big-integer power holds the GIL, so
``\\boxed{9^{9^{9^{9}}}}`` once stalled the whole process — and a killed process can. Expressions that
can only stall (power towers, large factorials and exponents, very long or deeply nested input) are
graded wrong before any worker sees them (``too_costly``). ``Grader.timeouts``, ``.skipped``,
``.rejected`` and ``.errors`` count what happened.
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
_NUMBER = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d{1,3})?")  # 1e-3; exponents of 4+ digits are not plain
_REPEAT = re.compile(r"(-?)(\d*)\.(\d*)\\(?:overline|bar)\{?(\d+)\}?")  # 0.\overline{3}, 0.1\bar{6}
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
        if m := _REPEAT.fullmatch(s):
            # a.b(c repeating) = a + (b + c / (10^|c| - 1)) / 10^|b|
            whole, fixed, cycle = int(m[2] or 0), m[3], m[4]
            value = whole + (int(fixed or 0) + Fraction(int(cycle), 10 ** len(cycle) - 1)) / 10 ** len(fixed)
            return -value if m[1] else value
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


_TOWER = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\(?[\d.]+\)?\s*\^|\*\*[^*]*\*\*")
_FACTORIAL = re.compile(r"(\d+)\s*!")
_EXPONENT = re.compile(r"\^\s*\{?\s*(\d+)")
MAX_CHARS, MAX_DEPTH, MAX_DIGITS = 400, 12, 200


def too_costly(expr: str) -> bool:
    """Expressions that can stall sympy (or CPython's big integers) for minutes: power towers, large
    factorials or exponents, very long or deeply nested input. They are graded wrong before sympy sees
    them — unless they equal the reference as written, which the string comparison settles first."""
    if len(expr) > MAX_CHARS or _TOWER.search(expr):
        return True
    depth = deepest = 0
    for ch in expr:
        depth += (ch in "{([") - (ch in "})]")
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH or any(len(m) > MAX_DIGITS for m in re.findall(r"\d+", expr)):
        return True
    return any(int(m) > 100 for m in _FACTORIAL.findall(expr)) or any(int(m) > 10**4 for m in _EXPONENT.findall(expr))


def _serve(equal: str) -> None:
    """A grading worker (``python -c ... _serve``): import the comparison once, say ready, then answer
    one JSON ``[gold, target]`` line with one JSON ``[status, value]`` line until stdin closes."""
    import json
    import sys

    module, _, name = equal.partition(":")
    fn = getattr(__import__(module, fromlist=[name]), name)
    if name == "_math_verify_equal":
        import math_verify  # noqa: F401  # pay sympy's import before the first deadline starts
    print("ready", flush=True)
    for line in sys.stdin:
        try:
            reply = ["ok", bool(fn(*json.loads(line)))]
        except Exception as e:  # a parser bug on odd LaTeX is a wrong answer, not a crashed run
            reply = ["error", f"{type(e).__name__}: {e}"]
        print(json.dumps(reply), flush=True)


class _Worker:
    """One worker process. A plain subprocess (not multiprocessing): nothing of the caller's main module
    is re-imported, and it works the same under threads, accelerate and ``python -c``."""

    def __init__(self, equal: str):
        import os
        import subprocess
        import sys

        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"from mmthink.tasks.grading import _serve; _serve({equal!r})"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1, env=env)
        self.ready = False

    def _line(self, deadline: float) -> Optional[str]:
        import select
        import time

        left = max(deadline - time.monotonic(), 0)
        if not select.select([self.process.stdout], [], [], left)[0]:
            return None
        line = self.process.stdout.readline()
        if not line:
            raise EOFError("the grading worker exited")
        return line

    def wait_ready(self, deadline: float) -> bool:
        if not self.ready:
            self.ready = self._line(deadline) == "ready\n"
        return self.ready

    def ask(self, gold: str, target: str, deadline: float) -> Optional[tuple]:
        import json

        self.process.stdin.write(json.dumps([gold, target]) + "\n")
        self.process.stdin.flush()
        line = self._line(deadline)
        return None if line is None else tuple(json.loads(line))

    def kill(self) -> None:
        self.process.kill()
        try:
            self.process.wait(2)
        except Exception:  # noqa: BLE001 - a zombie is the OS's to reap now
            pass


class Grader:
    """Grades predictions; thread-safe. math-verify runs in worker processes, and a call that overruns
    its deadline is answered False at the deadline while its worker is killed (CPython's big-integer
    arithmetic holds the GIL, so no thread could be interrupted) and replaced by a fresh one, started at
    once so that the next call does not pay sympy's import. Counts timeouts, skips (no worker free
    before the deadline), rejections (``too_costly``) and errors."""

    def __init__(self, timeout_s: float = 5.0, workers: int = 2, equal: str = "mmthink.tasks.grading:_math_verify_equal"):
        import atexit

        self.timeout_s, self.size, self.equal = timeout_s, workers, equal
        self.timeouts = self.skipped = self.errors = self.rejected = 0
        self._idle: list[_Worker] = []
        self._count = 0  # workers alive, idle or busy
        self._cond = threading.Condition()
        atexit.register(self.close)

    def warm(self) -> None:
        """Start the workers now (each imports sympy once, ~2 s), instead of at the first hard answer."""
        with self._cond:
            while self._count < self.size:
                self._idle.append(_Worker(self.equal))
                self._count += 1

    def close(self) -> None:
        with self._cond:
            for w in self._idle:
                w.kill()
            self._count -= len(self._idle)
            self._idle = []

    def __call__(self, prediction: str, answer: str, timeout_s: Optional[float] = None) -> bool:
        target = last_boxed(prediction)
        if target is None:
            return False
        gold = last_boxed(answer) or answer  # a reference may itself be written "\boxed{...}"
        verdict = quick_verdict(gold, target)
        if verdict is not None:
            return verdict
        if too_costly(target) or too_costly(gold):
            with self._cond:
                self.rejected += 1
            return False
        return self._math_verify(gold, target, self.timeout_s if timeout_s is None else timeout_s)

    def _acquire(self, deadline: float) -> Optional[_Worker]:
        import time

        with self._cond:
            while not self._idle:
                if self._count < self.size:
                    self._count += 1
                    return _Worker(self.equal)
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    return None
            return self._idle.pop()

    def _release(self, worker: Optional[_Worker]) -> None:
        with self._cond:
            if worker is None:  # killed: start its replacement now, outside any caller's deadline
                worker = _Worker(self.equal)
            self._idle.append(worker)
            self._cond.notify()

    def _math_verify(self, gold: str, target: str, timeout_s: float) -> bool:
        import time

        deadline = time.monotonic() + timeout_s
        worker = self._acquire(deadline)
        if worker is None:
            with self._cond:
                self.skipped += 1
            return False
        try:
            if not worker.wait_ready(deadline + WORKER_START_S):
                raise TimeoutError
            reply = worker.ask(gold, target, deadline)
            if reply is None:
                raise TimeoutError
            status, value = reply
        except (TimeoutError, EOFError, OSError, ValueError):
            worker.kill()
            with self._cond:
                self.timeouts += 1
            self._release(None)
            return False
        self._release(worker)
        if status == "error":
            with self._cond:
                self.errors += 1
            return False
        return value


WORKER_START_S = 20.0  # a fresh worker's own start (python + sympy import) is not charged to the caller's deadline
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
