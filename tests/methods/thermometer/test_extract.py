import json
from pathlib import Path

import pytest
import torch

import mmthink.methods.thermometer.extract as X
import mmthink.methods.thermometer.freeform as FF
import mmthink.methods.thermometer.prompting as P
import mmthink.methods.thermometer.scoring as S
from mmthink.errors import UserError
from mmthink.methods.thermometer.features_io import load_features, load_task
from mmthink.models.config import ModelConfig
from mmthink.models.loading import load_model
from mmthink.tasks.mcq import generate, load_mcq

TINY = ModelConfig(name="tiny-llama")


@pytest.fixture(scope="module")
def loaded():
    # One thread: these models are tiny, and extra threads only wait on each other on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_model(TINY, train=False)
    torch.set_num_threads(threads)


@pytest.fixture
def tiny(loaded):
    return loaded.model.eval(), loaded.tokenizer


@pytest.fixture
def reuse_tiny(loaded, monkeypatch):
    """extract_all loads its model by name; hand it the module's tiny model instead of building one again."""
    monkeypatch.setattr("mmthink.models.loading.load_model", lambda cfg, train=True: loaded)


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def task_files(tmp_path):
    return [_write(tmp_path / "add_small.jsonl", generate("add_small")[:10]),
            _write(tmp_path / "even_odd.jsonl", generate("even_odd")[:7])]


def test_letter_tokens_are_single_next_tokens(tiny):
    model, tok = tiny
    row = generate("add_small")[0]
    prompt = P.render_prompt(tok, row, chat=True)
    assert prompt.endswith("<|im_start|>assistant\nAnswer:")
    ids, spelled = P.letter_token_ids(tok, prompt)
    # The tiny byte-level vocabulary splits " A" into two tokens, so the letter follows without a space.
    assert spelled == "A" and len(set(ids)) == 5
    assert [tok.decode([i]) for i in ids] == list("ABCDE")
    base = tok(prompt, add_special_tokens=False)["input_ids"]
    assert tok(prompt + "C", add_special_tokens=False)["input_ids"] == base + [ids[2]]


def test_smollm2_letters_are_space_prefixed_single_tokens():
    from transformers import AutoTokenizer

    from mmthink.paths import cache_dir

    folder = cache_dir() / "models" / "smollm2-135m-instruct"
    if not (folder / "tokenizer.json").is_file():
        pytest.skip("SmolLM2 not converted in this cache")
    tok = AutoTokenizer.from_pretrained(str(folder))
    ids, spelled = P.letter_token_ids(tok, P.render_prompt(tok, generate("capitals")[0], chat=True))
    assert spelled == " A" and [tok.decode([i]) for i in ids] == [" A", " B", " C", " D", " E"]


def test_feature_is_the_post_norm_state_that_the_lm_head_reads(tiny):
    model, tok = tiny
    rows = generate("add_small")[:3]
    ids, _ = P.letter_token_ids(tok, P.render_prompt(tok, rows[0], True))
    feats, logits = S.forward_last(model, tok, [P.render_prompt(tok, r, True) for r in rows], True, ids[:4])
    assert feats.shape == (3, model.config.hidden_size) and logits.shape == (3, 4)
    with torch.no_grad():
        head = model.lm_head(feats)[:, ids[:4]]
    torch.testing.assert_close(head, logits, atol=1e-4, rtol=1e-4)


def test_rows_do_not_depend_on_their_batch(tiny):
    model, tok = tiny
    rows = generate("capitals")[:4]  # prompts of different lengths: left padding differs per batch
    prompts = [P.render_prompt(tok, r, True) for r in rows]
    ids, _ = P.letter_token_ids(tok, prompts[0])
    f_all, l_all = S.forward_last(model, tok, prompts, True, ids[:4])
    f_one, l_one = S.forward_last(model, tok, prompts[2:3], True, ids[:4])
    torch.testing.assert_close(f_all[2:3], f_one, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(l_all[2:3], l_one, atol=1e-4, rtol=1e-4)


def test_cloze_scores_equal_a_full_forward(tiny):
    model, tok = tiny
    rows = generate("capitals")[:2]
    prompts = [P.render_prompt(tok, r, True, scoring="cloze") for r in rows]
    assert "\nA. " not in prompts[0]  # cloze prompts leave the options out
    _, scores = S.forward_last(model, tok, prompts, True, options=[r["options"] for r in rows])
    for b, row in enumerate(rows):
        p = tok(prompts[b], add_special_tokens=False)["input_ids"]
        for j, option in enumerate(row["options"]):
            o = tok(" " + option, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logp = model(input_ids=torch.tensor([p + o])).logits[0].log_softmax(-1)
            want = sum(logp[len(p) - 1 + t, o[t]].item() for t in range(len(o)))
            assert scores[b, j].item() == pytest.approx(want, abs=1e-3)


@pytest.mark.parametrize("scoring", ["letters", "cloze"])
def test_extract_all_writes_one_file_per_task(tmp_path, task_files, scoring, reuse_tiny):
    out = tmp_path / "features"
    summary = X.extract_all(TINY, task_files, out, batch_size=4, scoring=scoring, chunk_size=4, progress="none")
    tasks = load_features(out)
    assert sorted(tasks) == ["add_small", "even_odd"]
    assert tasks["add_small"].features.shape == (10, 256) and tasks["add_small"].logits.shape == (10, 4)
    assert tasks["even_odd"].logits.shape == (7, 2) and tasks["even_odd"].labels.dtype == torch.int64
    assert tasks["add_small"].labels.tolist() == [r["answer"] for r in load_mcq(task_files[0])]
    meta = tasks["add_small"].meta
    assert meta["scoring"] == scoring and meta["k"] == 4 and meta["run"]["model"] == "tiny-llama"
    assert ("letter_token_ids" in meta) == (scoring == "letters")
    assert not (out / "parts").exists()
    assert summary["add_small"]["n"] == 10 and 0 <= summary["even_odd"]["accuracy"] <= 1
    assert json.loads((out / "extract_summary.json").read_text())["tasks"]["even_odd"]["k"] == 2


def test_a_killed_run_resumes_at_the_next_chunk(tmp_path, task_files, tiny, monkeypatch):
    model, tok = tiny
    rows = load_mcq(task_files[0])  # 10 rows, chunks of 4: 3 parts
    full = X.extract_features(model, tok, rows, tmp_path / "ref" / "t.safetensors", 4, chunk_size=4, progress="none")

    calls = []
    real = X.mcq_chunk

    def dies_on_second_chunk(*args, **kwargs):
        calls.append(len(args[2]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(X, "mcq_chunk", dies_on_second_chunk)
    out = tmp_path / "run" / "t.safetensors"
    with pytest.raises(KeyboardInterrupt):
        X.extract_features(model, tok, rows, out, 4, chunk_size=4, progress="none")
    assert [p.name for p in (out.parent / "parts").iterdir()] == ["t.part-00000.safetensors"]
    assert not out.exists()

    calls.clear()
    monkeypatch.setattr(X, "mcq_chunk", lambda *a, **k: (calls.append(len(a[2])), real(*a, **k))[1])
    X.extract_features(model, tok, rows, out, 4, chunk_size=4, progress="none")
    assert calls == [4, 2]  # chunk 0 was kept; chunks 1 and 2 ran
    got, want = load_task(out), load_task(full)
    torch.testing.assert_close(got.features, want.features)
    torch.testing.assert_close(got.logits, want.logits)
    assert torch.equal(got.labels, want.labels)
    assert not (out.parent / "parts").exists()

    calls.clear()
    X.extract_features(model, tok, rows, out, 4, chunk_size=4, progress="none")
    assert calls == []  # a finished task is not recomputed


def test_parts_from_other_settings_are_refused(tmp_path, task_files, tiny, monkeypatch):
    model, tok = tiny
    rows = load_mcq(task_files[0])
    out = tmp_path / "t.safetensors"
    real = X.mcq_chunk
    calls = []

    def dies_on_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(X, "mcq_chunk", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        X.extract_features(model, tok, rows, out, 4, chunk_size=4, progress="none")
    with pytest.raises(UserError, match="different extraction .*scoring: 'letters' there, 'cloze' now"):
        X.extract_features(model, tok, rows, out, 4, chunk_size=4, progress="none", scoring="cloze")


def test_mixed_option_counts_and_bad_rows_are_refused_before_loading(tmp_path, tiny, monkeypatch):
    model, tok = tiny
    mixed = generate("add_small")[:2] + generate("even_odd")[:2]
    with pytest.raises(UserError, match="one number of options K"):
        X.extract_features(model, tok, mixed, tmp_path / "m.safetensors", progress="none")
    good = generate("even_odd")[:3]
    bad = _write(tmp_path / "bad.jsonl", good + [{"task": "t", "question": "q", "options": ["a", "b"], "answer": 5}])
    monkeypatch.setattr("mmthink.models.loading.load_model", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(UserError, match=r"bad\.jsonl:4: field 'answer'"):
        X.extract_all(TINY, [_write(tmp_path / "ok.jsonl", good), bad], tmp_path / "out")
    with pytest.raises(UserError, match="scoring"):
        X.extract_all(TINY, [bad], tmp_path / "out", scoring="logprob")


def test_freeform_labels_follow_the_graded_answers(tmp_path, tiny, monkeypatch, reuse_tiny):
    model, tok = tiny
    rows = [{"task": "ff", "question": f"What is the capital of {c}?", "answer": k}
            for c, k in [("France", "Paris"), ("Japan", "Tokyo"), ("Peru", "Lima")]]
    path = _write(tmp_path / "ff.jsonl", rows)
    replies = {"France": "It is Paris.", "Japan": "Kyoto", "Peru": "lima"}
    monkeypatch.setattr(FF, "greedy_answers", lambda m, t, qs, chat, bs: [replies[q.split()[-1][:-1]] for q in qs])
    out = tmp_path / "out"
    summary = X.extract_all(TINY, [path], out, batch_size=2, chunk_size=2, progress="none")
    task = load_task(out / "ff.safetensors")
    assert task.labels.tolist() == [0, 1, 0] and task.logits.shape == (3, 2)
    assert task.meta["kind"] == "freeform" and task.meta["options"] == ["Yes", "No"]
    answers = [json.loads(line) for line in (out / "ff.answers.jsonl").read_text().splitlines()]
    assert [a["correct"] for a in answers] == [True, False, True] and answers[1]["prediction"] == "Kyoto"
    assert summary["ff"]["answers_correct"] == pytest.approx(2 / 3, abs=1e-3)
    assert list(load_features(out)) == ["ff"]  # the answers file is not read as a task


def test_yes_no_prompt(tiny):
    _, tok = tiny
    row = FF.yes_no_row({"task": "ff", "question": "What is 2 plus 3?", "answer": "5"}, "5", True)
    assert row["answer"] == 0
    assert P.render_prompt(tok, row, chat=False) == (
        "Question: What is 2 plus 3?\nProposed answer: 5. Is the above answer correct?\nA. Yes\nB. No\nAnswer:")


def test_greedy_answers_are_short_single_lines(tiny):
    model, tok = tiny
    answers = FF.greedy_answers(model, tok, ["What is 2 plus 3?", "What is the capital of France?"], True)
    assert len(answers) == 2 and all("\n" not in a and len(tok(a)["input_ids"]) <= FF.MAX_NEW_TOKENS for a in answers)
