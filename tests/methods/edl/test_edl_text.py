"""Text inputs through the all-MiniLM-L6-v2 encoder: pooling, row validation, caching, training on embeddings."""
import json

import pytest
import torch

from mmthink.errors import UserError
from mmthink.methods.edl import text as T
from mmthink.methods.edl.evaluate import score
from mmthink.methods.edl.config import EDLConfig
from mmthink.methods.edl.train import train_edl

POS = ["I loved this film", "what a wonderful day", "the food was delicious", "a truly great book",
       "this is fantastic news", "she did an excellent job", "I am very happy with it", "a beautiful song",
       "the service was superb", "best holiday ever", "an amazing performance", "I enjoyed every minute",
       "such a lovely garden", "the kids had a great time", "brilliant and funny", "this made me smile",
       "a delightful little cafe", "the hotel was perfect", "what a pleasant surprise", "highly recommended"]
NEG = ["I hated this film", "what a terrible day", "the food was disgusting", "a truly awful book",
       "this is horrible news", "she did a poor job", "I am very angry about it", "an ugly noisy song",
       "the service was dreadful", "worst holiday ever", "a boring performance", "I regretted every minute",
       "such a filthy garden", "the kids were miserable", "stupid and dull", "this made me cry",
       "a dirty little cafe", "the hotel was a disaster", "what a nasty shock", "avoid at all costs"]
OOD = ["the train leaves at seven", "water boils at one hundred degrees", "the meeting is on tuesday",
       "paris is the capital of france", "the box has four corners"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mean_pool_golden():
    # mean of the first two tokens; the padded third is ignored
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert torch.equal(T.mean_pool(h, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))
    # an all-padding row gives zeros, not nan
    assert torch.equal(T.mean_pool(h, torch.zeros(1, 3)), torch.zeros(1, 2))


@pytest.mark.parametrize("lines, where, what", [
    (['{"text": "fine", "label": 0}', '{"label": 1}'], ":2", "field 'text': missing"),
    (['{"text": "fine", "label": 0}', '', '{"text": "x", "label": "1"}'], ":3", "field 'label': expected int"),
    (['{"text": "", "label": 0}'], ":1", "field 'text': empty"),
    (['{"text": "fine", "label": -2}'], ":1", "must be >= 0"),
    (['{"text": "fine", "label": 0}', '{"text": "oops"'], ":2", "not valid JSON"),
])
def test_malformed_rows_name_file_and_line(tmp_path, lines, where, what):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=what) as e:
        T.read_text_rows(path)
    assert f"{path}{where}" in str(e.value)


def test_test_label_outside_the_training_classes(tmp_path):
    train = _write(tmp_path / "train.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 1}])
    test = _write(tmp_path / "test.jsonl", [{"text": "a", "label": 0}, {"text": "c", "label": 2}])
    with pytest.raises(UserError, match=r"test.jsonl:2: field 'label': 2 is not a class of the training file"):
        T.text_split(str(train), str(test))


def test_text_classification_trains_and_caches(tmp_path, monkeypatch):
    rows = [{"text": t, "label": 1} for t in POS] + [{"text": t, "label": 0} for t in NEG]
    # every other sentence of each class trains, the rest test
    train = _write(tmp_path / "train.jsonl", rows[0::2])
    test = _write(tmp_path / "test.jsonl", rows[1::2])
    ood = _write(tmp_path / "ood.jsonl", [{"text": t} for t in OOD])
    cache = tmp_path / "features"
    s = T.text_split(str(train), str(test), str(ood), cache_dir=cache)
    assert s.x_train.shape == (20, 384) and s.x_ood.shape == (5, 384)
    assert torch.allclose(s.x_train.norm(dim=-1), torch.ones(20), atol=1e-5)  # L2-normalised
    assert s.y_train.tolist() == [r["label"] for r in rows[0::2]]
    assert len(list(cache.glob("*.safetensors"))) == 3

    def no_encoding(*a, **k):
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(T, "encode_texts", no_encoding)
    again = T.text_split(str(train), str(test), str(ood), cache_dir=cache)
    assert torch.equal(again.x_test, s.x_test)
    monkeypatch.undo()
    # the embeddings carry the sentiment: a small Dirichlet network separates it
    # (observed: accuracy 1.0 for seeds 0-1, OOD AUROC 1.0 on these five neutral sentences)
    model = train_edl(s.x_train, s.y_train, EDLConfig(objective="mixture_distill", epochs=60, hidden=32, batch_size=8),
                      progress="none")
    r = score(model, s.x_test, s.y_test, s.x_ood)
    assert r["accuracy"] >= 0.85, r
    assert 0.0 <= r["auroc/mutual_information"] <= 1.0


def test_train_edl_on_text_through_the_cli(cli, tmp_path):
    rows = [{"text": t, "label": 1} for t in POS] + [{"text": t, "label": 0} for t in NEG]
    train = _write(tmp_path / "train.jsonl", rows[0::2])
    test = _write(tmp_path / "test.jsonl", rows[1::2])
    out = tmp_path / "run"
    args = ["train", "edl", "--recipe", "tiny/edl", f"output_dir={out}", "logging.progress=none", "data.name=text",
            "edl.objective=edl_digamma", "edl.epochs=30", "edl.batch_size=8"]
    res = cli(*args, f"data.train_file={train}", f"data.test_file={test}")
    assert res.exit_code == 0, res.stderr
    metrics = json.loads((out / "model" / "eval.json").read_text())
    assert metrics["accuracy"] >= 0.85 and "auroc/mutual_information" not in metrics  # no OOD file given
    assert len(list((out / "features").glob("*.safetensors"))) == 2
    res = cli("eval", "edl", "--checkpoint", str(out / "model"), "--data", "text", "--recipe", "tiny/edl",
              f"output_dir={out}", f"data.train_file={train}", f"data.test_file={test}")
    assert res.exit_code == 0, res.stderr
    assert json.loads((out / "model" / "eval.json").read_text()) == metrics
    res = cli("eval", "edl", "--checkpoint", str(out / "model"), "--data", "digits", "--recipe", "tiny/edl")
    assert res.exit_code == 2 and "takes 384 features" in res.stderr
    shared = tmp_path / "shared"
    res = cli(*args, f"output_dir={tmp_path / 'run2'}", f"data.train_file={train}", f"data.test_file={test}",
              f"data.cache_dir={shared}")
    assert res.exit_code == 0, res.stderr
    assert len(list(shared.glob("*.safetensors"))) == 2 and not (tmp_path / "run2" / "features").exists()
    res = cli(*args, f"output_dir={tmp_path / 'bad'}")
    assert res.exit_code == 2 and "data.train_file" in res.stderr and not (tmp_path / "bad").exists()


def test_embeddings_do_not_depend_on_batching_and_carry_meaning():
    texts = ["a truly great book", "what a wonderful day it has been for all of us", "the box has four corners"]
    one = T.encode_texts(texts, "all-minilm-l6-v2", batch_size=1)
    together = T.encode_texts(texts, "all-minilm-l6-v2", batch_size=3)  # padded to the longest text
    assert torch.allclose(one, together, atol=1e-5)
    para = T.encode_texts(["an excellent book", "a square has four sides"], "all-minilm-l6-v2")
    # cosine similarities (unit vectors): each paraphrase is closer to its own sentence
    assert para[0] @ one[0] > para[0] @ one[2] and para[1] @ one[2] > para[1] @ one[0]


def test_unknown_encoder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="model path not found|cannot load the text encoder"):
        T.encode_texts(["hello"], str(tmp_path / "no-such-encoder"))
