import pytest

from mmthink.data.chat import validate_chat_row
from mmthink.data.rows import load_rows
from mmthink.errors import UserError


def test_jsonl_and_parquet_load_the_same_rows(tmp_path):
    import datasets

    src = load_rows("data/toy/arith_eval.jsonl", validate_chat_row)
    parquet = tmp_path / "eval.parquet"
    src.to_parquet(str(parquet))
    again = load_rows(parquet, validate_chat_row)
    assert len(again) == len(src) == 100
    assert again[7] == src[7]
    assert isinstance(again, datasets.Dataset)


def test_line_numbers_count_blank_lines(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "a", "completion": "b"}\n\n\n{"prompt": "a", "completion": ""}\n')
    with pytest.raises(UserError, match=r"d.jsonl:4: field 'completion': empty"):
        load_rows(f, validate_chat_row)


def test_parquet_errors_name_the_row(tmp_path):
    import datasets

    f = tmp_path / "d.parquet"
    datasets.Dataset.from_list([{"prompt": "a", "completion": "b"}, {"prompt": "a", "completion": ""}]).to_parquet(str(f))
    with pytest.raises(UserError, match=r"d.parquet row 1: field 'completion': empty"):
        load_rows(f, validate_chat_row)


def test_limit_keeps_the_first_rows():
    assert len(load_rows("data/toy/arith_train.jsonl", validate_chat_row, limit=5)) == 5
