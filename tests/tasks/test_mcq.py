import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from mmthink.errors import UserError
from mmthink.tasks.mcq import (
    ANIMALS, CAPITALS, CONTINENTS, DAYS, FREEFORM_TASKS, MONTHS, OPPOSITES, PLURALS, SEED, TASKS, UNITS,
    format_prompt, generate, generate_freeform, load_freeform, load_mcq, validate_mcq_row,
)

ASSETS = Path("assets/mcq")
ROWS = {t: generate(t) for t in TASKS}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_committed_copies_are_what_mmthink_data_mcq_writes(cli, tmp_path):
    assert cli("data", "mcq", "--out", tmp_path, "--seed", SEED).exit_code == 0
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.jsonl"))
    committed = sorted(p.relative_to(ASSETS) for p in ASSETS.rglob("*.jsonl"))
    assert fresh == committed
    for rel in fresh:
        assert (tmp_path / rel).read_text() == (ASSETS / rel).read_text(), rel


def test_generation_is_deterministic_by_seed():
    for task in ("add_small", "capitals", "alphabetical"):
        assert generate(task, seed=5) == generate(task, seed=5)
        assert generate(task, seed=5) != generate(task, seed=6)
    assert generate_freeform("ff_arithmetic", seed=5) == generate_freeform("ff_arithmetic", seed=5)


def test_many_tasks_every_row_valid_and_distinct():
    assert len(TASKS) >= 12
    for task, rows in ROWS.items():
        assert 100 <= len(rows) <= 150, task
        ks = set()
        for r in rows:
            validate_mcq_row(r)
            assert r["task"] == task
            ks.add(len(r["options"]))
        assert len(ks) == 1, task  # one K per file
        keys = [(r["question"], frozenset(r["options"])) for r in rows]
        assert len(set(keys)) == len(rows), task
        if task not in ("alphabetical", "min_max_of_four"):  # these ask one question about different options
            assert len({r["question"] for r in rows}) == len(rows), task
        # the answer position is shuffled, not fixed
        assert len({r["answer"] for r in rows}) == len(rows[0]["options"]), task


def test_computed_answers_are_right():
    def correct(r):
        return r["options"][r["answer"]]

    for r in ROWS["add_small"] + ROWS["add_large"] + ROWS["subtract"] + ROWS["multiply"]:
        a, op, b = re.fullmatch(r"What is (\d+) ([-+x]) (\d+)\?", r["question"]).groups()
        a, b = int(a), int(b)
        assert int(correct(r)) == {"+": a + b, "-": a - b, "x": a * b}[op]
    for r in ROWS["compare_numbers"]:
        word, a, b = re.fullmatch(r"Which number is (\w+): (\d+) or (\d+)\?", r["question"]).groups()
        assert int(correct(r)) == (max if word == "larger" else min)(int(a), int(b))
    for r in ROWS["min_max_of_four"]:
        nums = [int(o) for o in r["options"]]
        assert int(correct(r)) == (min(nums) if "smallest" in r["question"] else max(nums))
    for r in ROWS["fraction_larger"]:
        x, y = (Fraction(int(n), int(d)) for n, d in (o.split("/") for o in r["options"]))
        assert Fraction(*map(int, correct(r).split("/"))) == max(x, y) and x != y
    for r in ROWS["even_odd"]:
        n = int(re.search(r"\d+", r["question"]).group())
        assert correct(r) == ("even" if n % 2 == 0 else "odd")
    for r in ROWS["next_in_sequence"]:
        terms = [int(t) for t in re.findall(r"\d+", r["question"])]
        assert int(correct(r)) == terms[-1] + (terms[1] - terms[0])
    for r in ROWS["day_after"]:
        day, n = re.fullmatch(r"Today is (\w+)\. What day of the week will it be in (\d+) days\?",
                              r["question"]).groups()
        assert correct(r) == DAYS[(DAYS.index(day) + int(n)) % 7]
    for r in ROWS["month_after"]:
        n, way, month = re.fullmatch(r"Which month comes (\d+) months? (after|before) (\w+)\?", r["question"]).groups()
        step = int(n) if way == "after" else -int(n)
        assert correct(r) == MONTHS[(MONTHS.index(month) + step) % 12]
    factor = {(big, small): f for big, small, f in UNITS}
    for r in ROWS["unit_conversion"]:
        small, n, big = re.fullmatch(r"How many (\w+) are in (\d+) (\w+)\?", r["question"]).groups()
        assert int(correct(r)) == int(n) * factor[(big, small)]
    for task, fn in [("first_letter", lambda w: w[0]), ("last_letter", lambda w: w[-1]), ("word_length", len)]:
        for r in ROWS[task]:
            assert correct(r) == str(fn(re.search(r"'(\w+)'", r["question"]).group(1)))
    for r in ROWS["count_letter"]:
        letter, word = re.findall(r"'(\w+)'", r["question"])
        assert int(correct(r)) == word.count(letter)
    for r in ROWS["alphabetical"]:
        assert correct(r) == min(r["options"])
    for r in ROWS["logic_order"]:
        pattern = r"(\w+) is (\w+) than (\w+)\. \w+ is \w+ than (\w+)\. Is (\w+) (\w+) than (\w+)\?"
        x, more, y, z, a, word, b = re.fullmatch(pattern, r["question"]).groups()
        rank = {x: 2, y: 1, z: 0}
        truth = rank[a] > rank[b] if word == more else rank[a] < rank[b]
        assert correct(r) == ("Yes" if truth else "No")


def test_fact_spot_checks():
    caps = dict(CAPITALS)
    assert caps["France"] == "Paris" and caps["Japan"] == "Tokyo" and caps["Australia"] == "Canberra"
    assert caps["Canada"] == "Ottawa" and caps["Brazil"] == "Brasilia" and caps["Nigeria"] == "Abuja"
    cont = dict(CONTINENTS)
    assert cont["Kenya"] == "Africa" and cont["Peru"] == "South America" and cont["Fiji"] == "Oceania"
    assert cont["Mongolia"] == "Asia" and cont["Iceland"] == "Europe" and cont["Cuba"] == "North America"
    animals = dict(ANIMALS)
    assert animals["whale"] == "mammal" and animals["bat"] == "mammal" and animals["penguin"] == "bird"
    assert animals["shark"] == "fish" and animals["seahorse"] == "fish" and animals["turtle"] == "reptile"
    assert animals["frog"] == "amphibian" and animals["platypus"] == "mammal"
    plurals = dict(PLURALS)
    assert plurals["child"] == "children" and plurals["sheep"] == "sheep" and plurals["knife"] == "knives"
    assert plurals["city"] == "cities" and plurals["crisis"] == "crises"
    assert ("hot", "cold") in OPPOSITES and ("buy", "sell") in OPPOSITES
    for facts in (CAPITALS, CONTINENTS, ANIMALS, PLURALS):
        keys = [k for k, _ in facts]
        assert len(keys) == len(set(keys))
    assert len({v for _, v in CAPITALS}) == len(CAPITALS)
    words = [w for p in OPPOSITES for w in p]
    assert len(words) == len(set(words))  # each word has exactly one opposite here


def test_fact_rows_ask_the_listed_facts():
    caps = dict(CAPITALS)
    for r in ROWS["capitals"]:
        m = re.fullmatch(r"What is the capital of (?:the )?(.+)\?", r["question"])
        if m:
            assert r["options"][r["answer"]] == caps[m.group(1)]
        else:
            capital = r["question"].removesuffix(" is the capital of which country?")
            assert caps[r["options"][r["answer"]]] == capital
    for r in ROWS["plurals"]:
        word = re.search(r"'(\w+)'", r["question"]).group(1)
        assert r["options"][r["answer"]] == dict(PLURALS)[word]


def test_freeform_rows():
    for task in FREEFORM_TASKS:
        rows = generate_freeform(task)
        assert len(rows) >= 80 and len({r["question"] for r in rows}) == len(rows)
        for r in rows:
            q = set(re.findall(r"[a-z0-9]+", r["question"].lower()))
            assert not q & set(re.findall(r"[a-z0-9]+", r["answer"].lower())), r  # echoing cannot pass
    for r in generate_freeform("ff_arithmetic"):
        a, op, b = re.fullmatch(r"What is (\d+) (plus|times) (\d+)\?", r["question"]).groups()
        assert int(r["answer"]) == (int(a) + int(b) if op == "plus" else int(a) * int(b))
    assert load_freeform(ASSETS / "freeform" / "ff_capitals.jsonl")[0].keys() == {"task", "question", "answer"}


def test_format_prompt():
    row = {"task": "t", "question": "What is 7 + 5?", "options": ["11", "12", "14"], "answer": 1}
    assert format_prompt(row) == "Question: What is 7 + 5?\nA. 11\nB. 12\nC. 14\nAnswer:"
    assert format_prompt(row, options=False) == "Question: What is 7 + 5?\nAnswer:"


def test_load_mcq_reads_the_committed_files():
    rows = load_mcq(ASSETS / "even_odd.jsonl", limit=5)
    assert len(rows) == 5 and rows[0] == _lines(ASSETS / "even_odd.jsonl")[0]


@pytest.mark.parametrize("bad, why", [
    ({"task": "t", "question": "q", "options": ["a"], "answer": 0}, "2 to 5 options"),
    ({"task": "t", "question": "q", "options": ["a", "b"], "answer": 2}, "out of range"),
    ({"task": "t", "question": "q", "options": ["a", "a"], "answer": 0}, "repeat"),
    ({"task": "t", "question": "q", "options": ["a", "b"], "answer": "a"}, "expected int"),
    ({"task": "t", "options": ["a", "b"], "answer": 0}, "'question': missing"),
])
def test_malformed_row_names_file_and_line(tmp_path, bad, why):
    good = {"task": "t", "question": "q", "options": ["a", "b"], "answer": 0}
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(UserError, match=rf"t\.jsonl:4: .*{why}"):
        load_mcq(path)
