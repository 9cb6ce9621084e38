from pathlib import Path


from mmthink.tasks.toy import SPLITS, arithmetic_rows


def test_committed_toy_data_is_what_mmthink_data_toy_writes(cli, tmp_path):
    assert cli("data", "toy", "--out", tmp_path).exit_code == 0
    for name in SPLITS:
        assert (tmp_path / name).read_text() == Path("data/toy", name).read_text(), name


def test_answers_are_correct():
    for row in arithmetic_rows(50, 3):
        q, a = row["messages"][0]["content"], row["messages"][1]["content"]
        x, op, y = q.removeprefix("What is ").removesuffix("?").split()
        assert int(a) == (int(x) + int(y) if op == "+" else int(x) - int(y))
