"""VSP (FrozenLake) spatial planning and reasoning: maps, rules, images, rows and the evaluator.

Rows follow the official Mirage JSONL format (``text_input`` with ``<image>``, ``image_input``,
``image_output`` = the helper image, ``text_output``, ``map_desc``, ``map_id``) plus ``task``, ``n``
and, for reasoning rows, the queried ``actions``. ``map_desc[r][c]``: 0 ice, -1 hole, 1 start,
2 goal; row 0 is the top of the image.

Rule for success: the player must *end* on the goal after all moves (the official wording). Gym's
FrozenLake would stop at the goal mid-sequence; our generated reasoning sequences never touch the
goal before their last move, so their labels are the same under both readings.

``mmthink data vsp --out DIR --task planning|reasoning [--seed S]`` writes the paper's split
(train 100/200/300/400 maps for N = 3..6, test 100 per N) under OUT_DIR.
"""

from __future__ import annotations

import os
import random
import re
from collections import deque
from pathlib import Path
from typing import Iterable, Optional

from PIL import Image

from mmthink.data.rows import BadRow, need
from mmthink.io import write_jsonl
from mmthink.errors import UserError

ICE, HOLE, START, GOAL = 0, -1, 1, 2
MOVES = {"U": (-1, 0), "D": (1, 0), "L": (0, -1), "R": (0, 1)}  # dict order = BFS tie order
OUTCOMES = ("goal", "hole", "safe")
LETTER = {"goal": "A", "hole": "B", "safe": "C"}
TASKS = ("planning", "reasoning")

# Measured on the official planning test file (share of all cells that are holes).
HOLE_FRAC = {3: 0.14, 4: 0.16, 5: 0.18, 6: 0.18}
TRAIN_COUNTS = {3: 100, 4: 200, 5: 300, 6: 400}
TEST_COUNTS = {3: 100, 4: 100, 5: 100, 6: 100}

# One solid square per cell: with cell_px=28 one merged Qwen2.5-VL token (14 px patch x 2 merge) sees one cell.
COLOURS = {ICE: (235, 240, 245), HOLE: (20, 30, 80), START: (40, 170, 70), GOAL: (240, 200, 40)}
PATH_COLOUR = (240, 120, 40)  # ice cells the helper path walks over
FELL_COLOUR = (200, 30, 30)  # the hole a helper path falls into

Cell = tuple[int, int]

# ---------------------------------------------------------------- maps


def make_map(n: int, rng: random.Random, hole_frac: Optional[float] = None) -> list[list[int]]:
    """A random solvable N x N map: start != goal, each other cell a hole with fixed probability."""
    if n < 2:
        raise ValueError(f"VSP maps need n >= 2, got {n}")
    frac = HOLE_FRAC.get(n, 0.18) if hole_frac is None else hole_frac
    if not 0 <= frac < 1:
        raise ValueError(f"hole_frac must be in [0, 1), got {frac}")
    # p per non-start/goal cell so that holes are `frac` of *all* cells on average.
    p = min(frac * n * n / (n * n - 2), 0.95)
    while True:
        start, goal = rng.sample(range(n * n), 2)
        m = [[ICE] * n for _ in range(n)]
        for i in range(n * n):
            code = START if i == start else GOAL if i == goal else HOLE if rng.random() < p else ICE
            m[i // n][i % n] = code
        if shortest_path(m) is not None:
            return m


def _find(map_desc, code: int) -> Cell:
    for r, row in enumerate(map_desc):
        for c, v in enumerate(row):
            if v == code:
                return r, c
    raise ValueError(f"map has no cell with code {code}")


def _step(n: int, cell: Cell, action: str) -> Cell:
    # Off-grid moves are no-ops.
    dr, dc = MOVES[action]
    r, c = cell[0] + dr, cell[1] + dc
    return (r, c) if 0 <= r < n and 0 <= c < n else cell


def _bfs(map_desc, src: Cell, avoid: Iterable[Cell] = ()) -> dict:
    """Parent links {cell: (previous cell, action)} of every cell reachable from src over non-holes not in avoid."""
    n, avoid = len(map_desc), set(avoid)
    parents, queue = {src: None}, deque([src])
    while queue:
        cell = queue.popleft()
        for a in MOVES:
            nxt = _step(n, cell, a)
            if nxt not in parents and nxt not in avoid and map_desc[nxt[0]][nxt[1]] != HOLE:
                parents[nxt] = (cell, a)
                queue.append(nxt)
    return parents


def _path_to(parents: dict, dst: Cell) -> list[str]:
    actions = []
    while parents[dst] is not None:
        dst, a = parents[dst]
        actions.append(a)
    return actions[::-1]


def shortest_path(map_desc) -> Optional[list[str]]:
    """Fewest moves from start to goal avoiding holes (ties broken in U, D, L, R order); None if unsolvable."""
    parents = _bfs(map_desc, _find(map_desc, START))
    goal = _find(map_desc, GOAL)
    return _path_to(parents, goal) if goal in parents else None


# ---------------------------------------------------------------- rules


def _walk(map_desc, actions) -> tuple[list[Cell], str]:
    """Cells visited (start included) and the outcome; the walk stops on the first hole."""
    n, pos = len(map_desc), _find(map_desc, START)
    cells = [pos]
    for a in actions:
        if a not in MOVES:
            raise ValueError(f"unknown action {a!r}: expected one of U/D/L/R")
        pos = _step(n, pos, a)
        cells.append(pos)
        if map_desc[pos[0]][pos[1]] == HOLE:
            return cells, "hole"
    return cells, "goal" if map_desc[pos[0]][pos[1]] == GOAL else "safe"


def simulate(map_desc, actions) -> str:
    """'hole' if any move lands on a hole, else 'goal' if the last position is the goal, else 'safe'."""
    return _walk(map_desc, actions)[1]


def _last_boxed(text: str) -> Optional[str]:
    """Content of the last closed \\boxed{...}, braces matched; None when there is none."""
    found = None
    for m in re.finditer(r"\\boxed\s*\{", text):
        depth = 1
        for i in range(m.end(), len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                found = text[m.end():i]
                break
    return found


_WORDS = re.compile(r"\b(up|down|left|right)\b", re.IGNORECASE)


ANSWER_RULES = ("official", "strict")


def parse_actions(text: str, rule: str = "official") -> Optional[list[str]]:
    """Moves in the last \\boxed{}; None if there is no box.

    official (the Mirage evaluator): upper-case the content and keep every U/D/L/R, so ``r, d`` is
    R D and ``RIGHT`` is R (its I, G, H, T are dropped). strict: the words UP/DOWN/LEFT/RIGHT, then only
    capital letters, so lower-case letters, ``\\text`` or ``\\rightarrow`` add no move.
    """
    content = _last_boxed(text)
    if content is None:
        return None
    if rule == "official":
        return [ch for ch in content.upper() if ch in MOVES]
    if rule != "strict":
        raise ValueError(f"unknown answer rule {rule!r}; expected one of {ANSWER_RULES}")
    # Words first so that RIGHT gives R alone; only capitals count, so \text or \rightarrow add nothing.
    content = _WORDS.sub(lambda m: m.group(1)[0].upper(), content)
    return [ch for ch in content if ch in MOVES]


def parse_choice(text: str) -> Optional[str]:
    """The option letter A/B/C standing alone in the last \\boxed{} ('B', '(B)', '\\text{B}'); None if absent."""
    content = _last_boxed(text)
    m = re.search(r"(?<![A-Za-z])([ABC])(?![A-Za-z])", content) if content is not None else None
    return m.group(1) if m else None


# ---------------------------------------------------------------- images


def render(map_desc, cell_px: int = 28, path: Optional[list[str]] = None) -> Image.Image:
    """The map as N x N solid squares of cell_px; with `path`, the helper image with the walked cells coloured."""
    n = len(map_desc)
    img = Image.new("RGB", (n * cell_px, n * cell_px))
    colour = {(r, c): COLOURS[v] for r, row in enumerate(map_desc) for c, v in enumerate(row)}
    if path is not None:
        cells, outcome = _walk(map_desc, path)
        for cell in cells[1:]:
            if map_desc[cell[0]][cell[1]] == ICE:
                colour[cell] = PATH_COLOUR
        if outcome == "hole":
            colour[cells[-1]] = FELL_COLOUR
    for (r, c), rgb in colour.items():
        img.paste(rgb, (c * cell_px, r * cell_px, (c + 1) * cell_px, (r + 1) * cell_px))
    return img


# ---------------------------------------------------------------- rows

_RULES = (
    "<image>\nThe image shows a frozen lake as a grid of {n} x {n} cells. The player starts on the green cell "
    "and the goal is the yellow cell; white cells are safe ice and dark blue cells are holes. A move goes one "
    "cell left (L), right (R), up (U) or down (D); a move off the grid leaves the player where it is, and "
    "stepping on a hole ends the game in failure."
)
PLANNING_PROMPT = _RULES + (
    " Find a sequence of moves that takes the player from the start to the goal without stepping on a hole. "
    "Put the final answer in \\boxed{{}}, moves separated by commas, e.g. \\boxed{{R, D}}."
)
REASONING_PROMPT = _RULES + (
    " The player makes these moves: {moves}. What happens?\n"
    "A. The player reaches the goal (stands on it after the last move).\n"
    "B. The player falls into a hole.\n"
    "C. The player is safe but does not end on the goal.\n"
    "Answer with the letter of the correct option in \\boxed{{}}."
)


# The tiny recipes' prompt: the rules prompt costs ~224 tokens a row, which a model trained from scratch
# on a CPU pays for in time and learns nothing from (every row has it).
SHORT_PLANNING_PROMPT = "<image>\nPlan the moves from green to yellow avoiding blue, in \\boxed{{}}."
PROMPTS = {"rules": PLANNING_PROMPT, "short": SHORT_PLANNING_PROMPT}
# Mirage's perception stage (stage 0): the map in words, cells as 1-indexed "row column".
PERCEPTION_PROMPT = "<image>\nDescribe the map."


def describe(map_desc) -> str:
    """The map in words: 'start 1 3, goal 3 2, holes 2 2; 3 3' (rows and columns from 1, holes in raster order)."""
    cells = {code: [f"{r + 1} {c + 1}" for r, row in enumerate(map_desc) for c, v in enumerate(row) if v == code]
             for code in (START, GOAL, HOLE)}
    return f"start {cells[START][0]}, goal {cells[GOAL][0]}, holes {'; '.join(cells[HOLE]) or 'none'}"


def best_constant(rows, max_len: int = 4) -> tuple[list[str], float]:
    """The constant plan (every move sequence of length 1..max_len) that solves most planning rows, and
    its accuracy on them: the score a model that ignores the image can reach at best."""
    from itertools import product

    maps = [r["map_desc"] for r in rows if task_of(r) == "planning"]
    if not maps:
        raise UserError("best_constant: no planning rows")
    best, score = [], -1
    for length in range(1, max_len + 1):
        for plan in product(MOVES, repeat=length):
            solved = sum(simulate(m, plan) == "goal" for m in maps)
            if solved > score:
                best, score = list(plan), solved
    return best, score / len(maps)


def _image_paths(map_id: str, image_dir: str) -> tuple[str, str]:
    return f"{image_dir}/{map_id}.png", f"{image_dir}/{map_id}_helper.png"


def planning_row(map_desc, map_id: str, image_dir: str = "images", prompt: str = "rules") -> dict:
    """A planning row; its helper image is the map with the BFS shortest path, its answer that path."""
    n = len(map_desc)
    image_input, image_output = _image_paths(map_id, image_dir)
    return {
        "task": "planning", "n": n, "map_id": map_id, "map_desc": map_desc,
        "text_input": PROMPTS[prompt].format(n=n), "image_input": image_input, "image_output": image_output,
        "text_output": "\\boxed{" + ", ".join(shortest_path(map_desc)) + "}",
    }


def reasoning_actions(map_desc, outcome: str, rng: random.Random) -> Optional[list[str]]:
    """A non-empty move sequence whose outcome is `outcome`, never touching the goal before its end; None if impossible."""
    n, start, goal = len(map_desc), _find(map_desc, START), _find(map_desc, GOAL)
    safe = _bfs(map_desc, start, avoid=[goal])  # reachable without touching the goal
    cells = sorted(safe)
    if outcome == "goal":
        # Detour through a random safe cell, then the shortest way on to the goal.
        w = rng.choice(cells)
        return _path_to(safe, w) + _path_to(_bfs(map_desc, w), goal)
    if outcome == "hole":
        edges = [(c, a) for c in cells for a in MOVES if map_desc[_step(n, c, a)[0]][_step(n, c, a)[1]] == HOLE]
        if not edges:
            return None
        c, a = rng.choice(edges)
        # Moves after the fall do not matter; a few teach that.
        return _path_to(safe, c) + [a] + rng.choices(list(MOVES), k=rng.randint(0, 2))
    if outcome != "safe":
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    plan = shortest_path(map_desc)
    if len(plan) >= 2 and rng.random() < 0.5:
        return plan[: len(plan) - rng.randint(1, min(2, len(plan) - 1))]  # near miss: the plan cut short
    pos, actions = start, []
    for _ in range(rng.randint(1, 2 * n)):
        options = [a for a in MOVES if _step(n, pos, a) in safe]
        if not options:
            return None
        actions.append(rng.choice(options))
        pos = _step(n, pos, actions[-1])
    return actions


def reasoning_row(map_desc, map_id: str, image_dir: str, rng: random.Random,
                  outcome: Optional[str] = None) -> Optional[dict]:
    """A 3-way question about a move sequence of `outcome` (random if None); None if this map cannot give it.

    The helper image draws the queried sequence, not the shortest path: that is what shows the answer.
    """
    outcome = outcome or rng.choice(OUTCOMES)
    actions = reasoning_actions(map_desc, outcome, rng)
    return None if actions is None else question_row(map_desc, map_id, image_dir, actions)


def question_row(map_desc, map_id: str, image_dir: str, actions: list[str]) -> dict:
    """The 3-way question about the given move sequence; its answer is what simulating the moves gives."""
    n = len(map_desc)
    image_input, image_output = _image_paths(map_id, image_dir)
    return {
        "task": "reasoning", "n": n, "map_id": map_id, "map_desc": map_desc, "actions": list(actions),
        "text_input": REASONING_PROMPT.format(n=n, moves=", ".join(actions)),
        "image_input": image_input, "image_output": image_output,
        "text_output": "\\boxed{" + LETTER[simulate(map_desc, actions)] + "}",
    }


def make_rows(task: str, counts: dict, rng: random.Random, image_dir: str = "images",
              id_prefix: str = "", exclude: Iterable = (), prompt: str = "rules") -> list[dict]:
    """Rows on distinct maps not in `exclude` (tuples of tuples); reasoning outcomes balanced within each size."""
    if task not in TASKS:
        raise UserError(f"VSP task must be one of {TASKS}, got '{task}'")
    if prompt not in PROMPTS or (prompt != "rules" and task != "planning"):
        raise UserError(f"VSP prompt must be one of {tuple(PROMPTS)} (short: planning only), got '{prompt}'")
    seen, rows = set(exclude), []
    for n, count in sorted((int(k), int(v)) for k, v in counts.items()):
        targets = [OUTCOMES[i % 3] for i in range(count)]
        rng.shuffle(targets)
        for i, outcome in enumerate(targets):
            map_id = f"{id_prefix}{task}_{n}x{n}_{i:04d}"
            for _ in range(10_000):
                m = make_map(n, rng)
                key = tuple(map(tuple, m))
                if key in seen:
                    continue
                row = planning_row(m, map_id, image_dir, prompt) if task == "planning" else reasoning_row(
                    m, map_id, image_dir, rng, outcome)
                if row is not None:
                    break
            else:
                raise UserError(f"cannot draw {count} distinct solvable {n}x{n} VSP maps; ask for fewer")
            seen.add(key)
            rows.append(row)
    return rows


# ---------------------------------------------------------------- files


def _replace_atomically(path: Path, write) -> None:
    # A reader never sees half a file: write beside it, then rename over it.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _write(rows: list[dict], out_dir: Path, name: str, cell_px: int) -> Path:
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    for row in rows:
        helper = row.get("actions") or shortest_path(row["map_desc"])
        for rel, path in ((row["image_input"], None), (row["image_output"], helper)):
            img = render(row["map_desc"], cell_px, path)
            _replace_atomically(out_dir / rel, lambda p: img.save(p, format="PNG"))
    write_jsonl(rows, out_dir / name)
    return out_dir / name


def generate(out_dir, task: str, counts: Optional[dict] = None, seed: int = 0, cell_px: int = 28) -> Path:
    """Write out_dir/images/*.png and out_dir/<task>.jsonl; the same seed gives the same files."""
    rng = random.Random(f"vsp-{task}-{seed}")
    rows = make_rows(task, TRAIN_COUNTS if counts is None else counts, rng)
    return _write(rows, Path(out_dir), f"{task}.jsonl", cell_px)


def rerender(source, out_dir, cell_px: int = 28, prompt: str = "rules") -> Path:
    """Our rows and images for the maps of an official-format file (its ``map_desc``), so a tiny model
    can be evaluated on the official maps: ``out_dir/<source stem>.jsonl`` and ``out_dir/images/``.
    Map ids are kept; a row with ``actions`` (or ``task: reasoning``) stays a reasoning question about
    the same moves, other rows become planning rows with the BFS shortest path as their answer."""
    from mmthink.data.rows import load_rows

    if prompt not in PROMPTS:
        raise UserError(f"VSP prompt must be one of {tuple(PROMPTS)}, got '{prompt}'")
    rows = []
    for i, old in enumerate(load_rows(source, validate_vsp_row)):
        map_desc = old["map_desc"]
        map_id = re.sub(r"[^A-Za-z0-9_.-]", "_", str(old["map_id"])) or f"row{i}"
        if task_of(old) == "reasoning":
            if old.get("actions") is None:
                raise UserError(f"{source}: row {i + 1}: a reasoning row needs its 'actions' to be re-rendered")
            row = question_row(map_desc, map_id, "images", old["actions"])
        else:
            if shortest_path(map_desc) is None:
                raise UserError(f"{source}: row {i + 1}: map {old['map_id']} has no path from start to goal")
            row = planning_row(map_desc, map_id, prompt=prompt)
        rows.append(row)
    if not rows:
        raise UserError(f"{source}: no rows to re-render")
    return _write(rows, Path(out_dir), Path(source).stem + ".jsonl", cell_px)


def generate_split(out_dir, task: str, seed: int = 0, n_train_counts: Optional[dict] = None,
                   n_test_counts: Optional[dict] = None, cell_px: int = 28, prompt: str = "rules") -> tuple[Path, Path]:
    """Write train.jsonl and test.jsonl (paper sizes by default) on disjoint maps, with their images."""
    out_dir = Path(out_dir)
    # Test first, on its own stream, so the test set does not move when the train counts change.
    test = make_rows(task, TEST_COUNTS if n_test_counts is None else n_test_counts,
                     random.Random(f"vsp-{task}-test-{seed}"), id_prefix="test_", prompt=prompt)
    used = [tuple(map(tuple, r["map_desc"])) for r in test]
    train = make_rows(task, TRAIN_COUNTS if n_train_counts is None else n_train_counts,
                      random.Random(f"vsp-{task}-train-{seed}"), id_prefix="train_", exclude=used, prompt=prompt)
    return _write(train, out_dir, "train.jsonl", cell_px), _write(test, out_dir, "test.jsonl", cell_px)


# ---------------------------------------------------------------- evaluation


def task_of(row: dict) -> str:
    """planning or reasoning."""
    # A file read through datasets gives every row every column, so a planning row may hold actions=None.
    return row.get("task") or ("reasoning" if row.get("actions") is not None else "planning")


def score_row(row: dict, prediction_text: str, rule: str = "official") -> dict:
    """{'correct', 'invalid'}: a plan is judged by simulating it on map_desc alone (no reference needed);
    a choice against the outcome of the row's `actions` (or its text_output when it has none)."""
    if task_of(row) == "planning":
        actions = parse_actions(prediction_text, rule)
        invalid = not actions  # no box, or a box without a single move
        return {"correct": not invalid and simulate(row["map_desc"], actions) == "goal", "invalid": invalid}
    if row.get("actions") is not None:
        truth = LETTER[simulate(row["map_desc"], row["actions"])]
    else:
        truth = parse_choice(row.get("text_output") or "")
        if truth is None:
            raise UserError(f"VSP reasoning row {row.get('map_id')}: no actions and no \\boxed{{A/B/C}} answer")
    choice = parse_choice(prediction_text)
    return {"correct": choice == truth, "invalid": choice is None}


def _summary(scores: list[dict]) -> dict:
    n = len(scores)
    return {"accuracy": sum(s["correct"] for s in scores) / n if n else 0.0,
            "invalid_rate": sum(s["invalid"] for s in scores) / n if n else 0.0, "n": n}


def score_predictions(rows, predictions: list[str], rule: str = "official") -> dict:
    """{'overall': {accuracy, invalid_rate, n}, 'by_n': {N: {...}}} over rows paired with predictions."""
    rows = list(rows)
    if len(rows) != len(predictions):
        raise UserError(f"VSP evaluation: {len(rows)} rows but {len(predictions)} predictions")
    by_n: dict[int, list] = {}
    scores = []
    for row, pred in zip(rows, predictions):
        s = score_row(row, pred, rule)
        scores.append(s)
        by_n.setdefault(len(row["map_desc"]), []).append(s)
    return {"overall": _summary(scores), "by_n": {n: _summary(s) for n, s in sorted(by_n.items())}}


# ---------------------------------------------------------------- validation


def _check_map(map_desc) -> None:
    n = len(map_desc)
    if n < 2 or not all(isinstance(r, list) and len(r) == n for r in map_desc):
        raise BadRow("map_desc", "expected a square list of lists, at least 2 x 2")
    codes = [v for r in map_desc for v in r]
    if any(isinstance(v, bool) or not isinstance(v, int) or v not in COLOURS for v in codes):
        raise BadRow("map_desc", "cells must be the ints -1 (hole), 0 (ice), 1 (start) or 2 (goal)")
    if codes.count(START) != 1 or codes.count(GOAL) != 1:
        raise BadRow("map_desc", f"expected one start and one goal, got {codes.count(START)} and {codes.count(GOAL)}")


def validate_vsp_row(row: dict) -> None:
    """Checks for ``load_rows``: official rows (test rows lack image_output/text_output) and ours."""
    if "<image>" not in need(row, "text_input", str, nonempty=True):
        raise BadRow("text_input", "has no <image> placeholder")
    image = need(row, "image_input", (str, list), nonempty=True)
    if isinstance(image, list) and not all(isinstance(p, str) and p for p in image):
        raise BadRow("image_input", "expected a path or a list of paths")
    need(row, "map_id", (str, int))
    _check_map(need(row, "map_desc", list, nonempty=True))
    for field in ("image_output", "text_output"):
        if field in row and row[field] is not None:
            need(row, field, (str, list), nonempty=True)
    if row.get("task") not in (None, *TASKS):
        raise BadRow("task", f"expected one of {TASKS}, got {row['task']!r}")
    if "actions" in row and row["actions"] is not None:
        if not all(a in MOVES for a in need(row, "actions", list)):
            raise BadRow("actions", "expected a list of the letters U/D/L/R")
    elif row.get("task") == "reasoning" and parse_choice(row.get("text_output") or "") is None:
        raise BadRow("actions", "missing: a reasoning row needs its move sequence or a \\boxed{A/B/C} answer")
