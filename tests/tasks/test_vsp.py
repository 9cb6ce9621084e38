import json
import random
from collections import Counter

import pytest
from PIL import Image

from mmthink.data.rows import BadRow, load_rows
from mmthink.errors import UserError
from mmthink.tasks import vsp
from mmthink.tasks.vsp import (
    COLOURS, FELL_COLOUR, HOLE, PATH_COLOUR, generate, generate_split, make_map, make_rows,
    parse_actions, parse_choice, planning_row, reasoning_row, render, score_predictions, score_row, shortest_path,
    simulate,
    validate_vsp_row,
)

# S . H
# . H .
# . . G
MAP3 = [[1, 0, -1],
        [0, -1, 0],
        [0, 0, 2]]
SMALL = {3: 3, 4: 3, 5: 3, 6: 3}


# ---------------------------------------------------------------- rules

@pytest.mark.parametrize("actions, outcome", [
    ([], "safe"),
    (["U", "L"], "safe"),                 # both off-grid: no-ops, still on the start
    (["U", "D", "D", "R", "R"], "goal"),  # the off-grid U changes nothing
    (["D", "D", "R", "R"], "goal"),
    (["R", "R"], "hole"),                 # second move lands on (0, 2)
    (["R", "R", "D", "D"], "hole"),       # moves after a fall do not matter
    (["D", "R"], "hole"),
    (["D", "D", "R"], "safe"),
    (["D", "D", "R", "R", "U"], "safe"),  # on the goal mid-way but not at the end
])
def test_simulate(actions, outcome):
    assert simulate(MAP3, actions) == outcome


def test_simulate_rejects_unknown_moves():
    with pytest.raises(ValueError, match="unknown action"):
        simulate(MAP3, ["X"])


@pytest.mark.parametrize("text, strict, official", [
    ("so \\boxed{RIGHT, DOWN}", ["R", "D"], ["R", "D"]),
    ("\\boxed{R,R,D}", ["R", "R", "D"], ["R", "R", "D"]),
    ("\\boxed{\\text{R, D}}", ["R", "D"], ["R", "D"]),           # nested braces; TEXT has no U/D/L/R
    ("\\boxed{right, Down, up, LEFT}", ["R", "D", "U", "L"], ["R", "D", "U", "L"]),
    ("\\boxed{L} then \\boxed{U, U}", ["U", "U"], ["U", "U"]),    # the last box wins
    ("\\boxed{R \\rightarrow D}", ["R", "D"], ["R", "R", "R", "R", "D"]),  # officially RIGHTARROW adds R R R
    ("\\boxed{r, d}", [], ["R", "D"]),                         # officially upper-cased first
    ("\\boxed{}", [], []),
    ("R, D", None, None),
    ("\\boxed{R, D", None, None),                           # never closed
])
def test_parse_actions_official_and_strict(text, strict, official):
    assert parse_actions(text, "strict") == strict
    assert parse_actions(text, "official") == official
    assert parse_actions(text) == official  # the default


def test_parse_actions_names_an_unknown_rule():
    with pytest.raises(ValueError, match="answer rule"):
        parse_actions("\\boxed{R}", "loose")


@pytest.mark.parametrize("text, letter", [
    ("\\boxed{B}", "B"), ("\\boxed{(C)}", "C"), ("\\boxed{\\text{A}}", "A"), ("\\boxed{A} no \\boxed{C.}", "C"),
    ("\\boxed{Both}", None), ("B", None),
])
def test_parse_choice(text, letter):
    assert parse_choice(text) == letter


# ---------------------------------------------------------------- maps

def test_shortest_path_on_a_hand_map():
    assert shortest_path(MAP3) == ["D", "D", "R", "R"]
    assert shortest_path([[1, -1], [-1, 2]]) is None
    # S . . .  / H H H .  / G . . .   forces the long way round
    snake = [[1, 0, 0, 0], [-1, -1, -1, 0], [2, 0, 0, 0], [0, 0, 0, 0]]
    assert len(shortest_path(snake)) == 8 and simulate(snake, shortest_path(snake)) == "goal"


def test_generated_maps_are_solvable_and_well_formed():
    rng = random.Random(0)
    for n in (3, 4, 5, 6):
        for _ in range(100):
            m = make_map(n, rng)
            codes = Counter(v for row in m for v in row)
            assert len(m) == n and all(len(r) == n for r in m)
            assert codes[1] == 1 and codes[2] == 1 and set(codes) <= {-1, 0, 1, 2}
            assert simulate(m, shortest_path(m)) == "goal"


def test_hole_fraction_is_near_the_official_one():
    rng = random.Random(1)
    for n, frac in vsp.HOLE_FRAC.items():
        maps = [make_map(n, rng) for _ in range(400)]
        measured = sum(v == HOLE for m in maps for r in m for v in r) / (400 * n * n)
        assert abs(measured - frac) < 0.03


# ---------------------------------------------------------------- images

def test_render_sizes_and_colours():
    img = render(MAP3, cell_px=28)
    assert img.size == (3 * 28, 3 * 28) and img.mode == "RGB"
    assert img.getpixel((2 * 28 + 5, 0 * 28 + 20)) == COLOURS[-1]  # hole at row 0, col 2
    assert img.getpixel((0, 0)) == COLOURS[1] and img.getpixel((83, 83)) == COLOURS[2]
    assert len(set(COLOURS.values()) | {PATH_COLOUR, FELL_COLOUR}) == 6

    helper = render(MAP3, cell_px=10, path=shortest_path(MAP3))
    assert helper.size == (30, 30)
    assert helper.getpixel((5, 15)) == PATH_COLOUR         # (1, 0) is on the path D D R R
    assert helper.getpixel((15, 25)) == PATH_COLOUR        # (2, 1)
    assert helper.getpixel((25, 5)) == COLOURS[-1]         # an untouched hole keeps its colour
    assert helper.getpixel((5, 5)) == COLOURS[1] and helper.getpixel((25, 25)) == COLOURS[2]
    assert render(MAP3, 10, path=["R", "R"]).getpixel((25, 5)) == FELL_COLOUR


# ---------------------------------------------------------------- rows and files

def test_planning_row_format():
    row = planning_row(MAP3, "m7", "images")
    assert row["text_output"] == "\\boxed{D, D, R, R}"
    assert row["image_input"] == "images/m7.png" and row["image_output"] == "images/m7_helper.png"
    assert "<image>" in row["text_input"] and "\\boxed{}" in row["text_input"]
    assert row["n"] == 3 and row["task"] == "planning" and row["map_id"] == "m7"
    validate_vsp_row(row)


def test_reasoning_rows_are_balanced_and_labelled_right():
    rng = random.Random(3)
    rows = [r for r in (reasoning_row(make_map(rng.choice([3, 4, 5, 6]), rng), f"r{i}", "images", rng)
                        for i in range(300)) if r is not None]
    assert len(rows) > 280
    counts = Counter(simulate(r["map_desc"], r["actions"]) for r in rows)
    assert all(abs(counts[o] / len(rows) - 1 / 3) < 0.08 for o in ("goal", "hole", "safe"))
    for r in rows:
        assert r["text_output"] == "\\boxed{" + vsp.LETTER[simulate(r["map_desc"], r["actions"])] + "}"
        cells, _ = vsp._walk(r["map_desc"], r["actions"])
        goal = vsp._find(r["map_desc"], 2)
        assert goal not in cells[:-1]  # the label holds whether or not the goal ends the episode
        validate_vsp_row(r)
    # make_rows balances exactly within each size
    per_n = Counter((r["n"], r["text_output"]) for r in make_rows("reasoning", {3: 30, 6: 30}, random.Random(0)))
    assert set(per_n.values()) == {10}


def test_generate_is_deterministic_and_writes_images(tmp_path):
    a = generate(tmp_path / "a", "planning", counts=SMALL, seed=5, cell_px=8)
    b = generate(tmp_path / "b", "planning", counts=SMALL, seed=5, cell_px=8)
    c = generate(tmp_path / "c", "planning", counts=SMALL, seed=6, cell_px=8)
    assert a.name == "planning.jsonl" and a.read_text() == b.read_text() != c.read_text()
    rows = [json.loads(line) for line in a.read_text().splitlines()]
    assert len(rows) == 12
    for row in rows:
        for rel in (row["image_input"], row["image_output"]):
            assert Image.open(tmp_path / "a" / rel).size == (8 * row["n"], 8 * row["n"])
        assert (tmp_path / "a" / row["image_input"]).read_bytes() == (tmp_path / "b" / row["image_input"]).read_bytes()
    assert not list((tmp_path / "a").rglob("*.tmp"))


def test_split_maps_are_disjoint_and_load(tmp_path):
    train, test = generate_split(tmp_path, "reasoning", seed=0, n_train_counts={3: 60, 4: 6},
                                 n_test_counts={3: 60, 4: 6}, cell_px=4)
    tr = load_rows(train, validate_vsp_row)
    te = load_rows(test, validate_vsp_row)
    assert len(tr) == len(te) == 66
    keys = lambda ds: {json.dumps(m) for m in ds["map_desc"]}  # noqa: E731
    assert len(keys(tr)) == 66 and not keys(tr) & keys(te)
    assert not set(tr["map_id"]) & set(te["map_id"])


def test_asking_for_more_maps_than_exist_is_a_user_error():
    with pytest.raises(UserError, match="distinct"):
        make_rows("planning", {2: 45}, random.Random(0))  # 2x2 has 44 solvable maps


# ---------------------------------------------------------------- evaluation

def test_evaluator_perfect_garbage_and_per_size():
    rows = make_rows("planning", SMALL, random.Random(0)) + make_rows("reasoning", SMALL, random.Random(1))
    perfect = score_predictions(rows, [r["text_output"] for r in rows])
    assert perfect["overall"] == {"accuracy": 1.0, "invalid_rate": 0.0, "n": 24}
    assert set(perfect["by_n"]) == {3, 4, 5, 6} and all(s["n"] == 6 for s in perfect["by_n"].values())
    garbage = score_predictions(rows, ["I do not know"] * len(rows))
    assert garbage["overall"] == {"accuracy": 0.0, "invalid_rate": 1.0, "n": 24}

    # Half right on 3x3 only; a plan other than the reference still counts.
    wrong = ["\\boxed{U}" if r["n"] == 3 and r["task"] == "planning" else r["text_output"] for r in rows]
    by_n = score_predictions(rows, wrong)["by_n"]
    assert by_n[3]["accuracy"] == 0.5 and by_n[3]["invalid_rate"] == 0.0 and by_n[4]["accuracy"] == 1.0
    with pytest.raises(UserError, match="predictions"):
        score_predictions(rows, [])


def test_a_plan_is_judged_without_reference():
    official = {"text_input": "<image> go", "image_input": "a.png", "map_desc": MAP3, "map_id": 3}
    validate_vsp_row(official)
    assert score_row(official, "\\boxed{U, D, D, R, R}") == {"correct": True, "invalid": False}
    assert score_row(official, "\\boxed{R, R}") == {"correct": False, "invalid": False}
    assert score_row(official, "\\boxed{no moves}") == {"correct": False, "invalid": True}
    assert score_row(official, "\\boxed{u, d, d, r, r}") == {"correct": True, "invalid": False}
    assert score_row(official, "\\boxed{u, d, d, r, r}", "strict") == {"correct": False, "invalid": True}


# ---------------------------------------------------------------- validation

GOOD = {"text_input": "<image> go", "image_input": "a.png", "map_desc": MAP3, "map_id": "x"}


@pytest.mark.parametrize("change, field", [
    ({"text_input": "no placeholder"}, "text_input"),
    ({"image_input": None}, "image_input"),
    ({"map_desc": [[1, 0], [0, 2], [0, 0]]}, "map_desc"),          # not square
    ({"map_desc": [[1, 0], [0, 3]]}, "map_desc"),                  # unknown code
    ({"map_desc": [[1, 1], [0, 2]]}, "map_desc"),                  # two starts
    ({"map_desc": [[1, 0], [0, 0]]}, "map_desc"),                  # no goal
    ({"map_desc": [[1, True], [0, 2]]}, "map_desc"),
    ({"map_id": None}, "map_id"),
    ({"task": "reasoning"}, "actions"),
    ({"actions": ["R", "X"]}, "actions"),
    ({"task": "jigsaw"}, "task"),
])
def test_validate_rejects_bad_rows(change, field):
    row = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(BadRow) as e:
        validate_vsp_row(row)
    assert e.value.field == field


def test_render_from_re_renders_official_maps_in_our_style(cli, tmp_path):
    official = tmp_path / "official_test.jsonl"
    rows = [
        {"text_input": "rules <image> plan", "image_input": "./data/vsp/imgs_test/a.png", "map_desc": MAP3,
         "map_id": "3x3/7"},
        {"text_input": "rules <image> what happens", "image_input": "./data/vsp/imgs_test/b.png", "map_desc": MAP3,
         "map_id": 8, "task": "reasoning", "actions": ["R", "R"]},
    ]
    official.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = cli("data", "vsp", "--render-from", official, "--out", tmp_path / "ours")
    assert res.exit_code == 0, res.stderr
    out = [json.loads(line) for line in (tmp_path / "ours" / "official_test.jsonl").read_text().splitlines()]
    assert [r["map_id"] for r in out] == ["3x3_7", "8"] and all(r["map_desc"] == MAP3 for r in out)
    assert out[0]["text_output"] == "\\boxed{" + ", ".join(shortest_path(MAP3)) + "}"
    assert out[1]["actions"] == ["R", "R"] and out[1]["text_output"] == "\\boxed{B}"  # R R falls into the hole
    image = Image.open(tmp_path / "ours" / out[0]["image_input"])
    assert image.tobytes() == render(MAP3).tobytes()
    assert (tmp_path / "ours" / out[1]["image_output"]).is_file()
    res = cli("data", "vsp", "--render-from", tmp_path / "nope.jsonl", "--out", tmp_path / "o2")
    assert res.exit_code == 2 and "nope.jsonl" in res.stderr


def test_describe_names_cells_from_one():
    assert vsp.describe(MAP3) == "start 1 1, goal 3 3, holes 1 3; 2 2"
    assert vsp.describe([[1, 0], [0, 2]]) == "start 1 1, goal 2 2, holes none"


def test_best_constant_is_the_plan_solving_most_maps():
    down_right = [[1, 0], [0, 2]]  # D R and R D both reach the goal
    right = [[1, 2], [0, 0]]
    plan, acc = vsp.best_constant([{"map_desc": m} for m in (down_right, down_right, right)], max_len=2)
    assert acc == pytest.approx(2 / 3) and simulate(down_right, plan) == "goal"
    # no single constant of length <= 2 solves all three (R alone stops on the goal of `right` only)
    assert vsp.best_constant([{"map_desc": right}], max_len=1) == (["R"], 1.0)
    with pytest.raises(UserError, match="no planning rows"):
        vsp.best_constant([])


def test_short_prompt_rows(tmp_path):
    train, _ = vsp.generate_split(tmp_path, "planning", 0, {3: 3}, {3: 1}, prompt="short")
    row = json.loads(train.read_text().splitlines()[0])
    assert row["text_input"] == vsp.SHORT_PLANNING_PROMPT.format(n=3) and "\\boxed{}" in row["text_input"]
    with pytest.raises(UserError, match="prompt"):
        vsp.generate_split(tmp_path, "reasoning", 0, {3: 3}, {3: 1}, prompt="short")
