import json
from pathlib import Path

import pytest

from mmthink.tasks.toy import SPLITS, arithmetic_rows


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_committed_toy_data_matches_the_generator(name):
    n, seed = SPLITS[name]
    committed = [json.loads(line) for line in Path("data/toy", name).read_text().splitlines()]
    assert committed == arithmetic_rows(n, seed)


def test_answers_are_correct():
    for row in arithmetic_rows(50, 3):
        q, a = row["messages"][0]["content"], row["messages"][1]["content"]
        x, op, y = q.removeprefix("What is ").removesuffix("?").split()
        assert int(a) == (int(x) + int(y) if op == "+" else int(x) - int(y))
