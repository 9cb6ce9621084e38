"""Comparison functions the grading tests run inside grader worker processes (importable by name there)."""

import time


def slow(gold, target):
    time.sleep(1.5)
    return True


def hang_in_c(gold, target):
    # A C-level big-integer power: holds the GIL for minutes, so only killing the process stops it.
    return 10 ** (10 ** 10) == int(gold)


def boom(gold, target):
    raise RuntimeError("sympy choked")
