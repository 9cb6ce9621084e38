import json
from collections import Counter
from pathlib import Path

import pytest

from mmthink.errors import UserError
from mmthink.tasks.textcls import K_SHOT, list_tasks, load_task

SHIPPED = list_tasks()
ASSETS = Path("assets/textcls")


def test_the_shipped_tasks_are_there():
    assert {"sst2", "agnews", "imdb"} <= set(SHIPPED)
    assert (ASSETS / "PROVENANCE.md").is_file()
    assert load_task("sst2").ood == "imdb"
    assert len(load_task("agnews").labels) == 4
    imdb = load_task("imdb")
    assert imdb.train == [] and imdb.dev == [] and len(imdb.test) == 200


def test_committed_files_are_what_mmthink_data_textcls_writes(cli, tmp_path):
    res = cli("data", "textcls", "--raw", ASSETS / "raw", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    assert "sst2: " in res.stdout
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert fresh == sorted(p.relative_to(ASSETS) for p in ASSETS.glob("*/*")
                           if p.is_file() and p.parent.name != "raw")
    for rel in fresh:
        assert (tmp_path / rel).read_text() == (ASSETS / rel).read_text(), rel


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_task_loads_balanced_and_disjoint(name):
    task = load_task(name)
    n = len(task.labels)
    assert task.name == name
    assert len(task.verbalizer) == n and all(len(w.split()) == 1 for w in task.verbalizer)
    assert task.test, name
    test_counts = Counter(y for _, y in task.test)
    assert set(test_counts) == set(range(n)) and len(set(test_counts.values())) == 1, test_counts
    assert test_counts[0] <= 100
    if task.train or task.dev:
        for split in (task.train, task.dev):
            assert Counter(y for _, y in split) == {y: K_SHOT for y in range(n)}
    texts = [t for split in (task.train, task.dev, task.test) for t, _ in split]
    assert len(set(texts)) == len(texts), "a text repeats within or across splits"
    if task.ood is not None:
        ood = load_task(task.ood)
        assert ood.test and not set(texts) & {t for t, _ in ood.test}


def test_prompt_and_fill():
    task = load_task("sst2")
    assert task.template == "{text} It was {label}."
    assert task.prompt("a {braced} film .") == "a {braced} film . It was "
    assert task.fill("fine .", 1) == "fine . It was great."


def _folder(tmp_path: Path, rows: list, meta: dict | None = None) -> Path:
    meta = meta or {"name": "mine", "labels": ["no", "yes"], "verbalizer": ["No", "Yes"],
                    "template": "{text} Answer: {label}"}
    (tmp_path / "task.json").write_text(json.dumps(meta))
    (tmp_path / "test.jsonl").write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_a_user_folder_loads(tmp_path):
    task = load_task(_folder(tmp_path, [{"text": "a", "label": 0}, {"text": "b", "label": 1}]))
    assert task.test == [("a", 0), ("b", 1)] and task.train == [] and task.ood is None


@pytest.mark.parametrize("bad, where, why", [
    ({"label": 0}, ":2", "'text': missing"),
    ({"text": "b", "label": 2}, ":2", "out of range"),
    ({"text": "b", "label": "1"}, ":2", "expected int"),
    ("{not json\n", ":2", "not valid JSON"),
])
def test_malformed_rows_name_file_and_line(tmp_path, bad, where, why):
    _folder(tmp_path, [{"text": "a", "label": 0}, bad])
    with pytest.raises(UserError) as e:
        load_task(tmp_path)
    assert f"test.jsonl{where}" in str(e.value) and why in str(e.value)


@pytest.mark.parametrize("meta, why", [
    ({"name": "m", "labels": ["a", "b"], "verbalizer": ["A"], "template": "{text} {label}"}, "one word per label"),
    ({"name": "m", "labels": ["a", "b"], "verbalizer": ["A", "B b"], "template": "{text} {label}"}, "single word"),
    ({"name": "m", "labels": ["a", "b"], "verbalizer": ["A", "B"], "template": "{text}"}, "{label}"),
])
def test_bad_task_json(tmp_path, meta, why):
    _folder(tmp_path, [{"text": "a", "label": 0}], meta)
    with pytest.raises(UserError, match="task.json") as e:
        load_task(tmp_path)
    assert why in str(e.value)


def test_an_unknown_task_names_the_shipped_ones():
    with pytest.raises(UserError) as e:
        load_task("no_such_task")
    assert "sst2" in str(e.value)
