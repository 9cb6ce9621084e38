"""The black box that prompt tuning is allowed to query (arXiv 2305.00593).

A black box takes soft prompts (P, L, D) — added to the input embeddings of L placeholder tokens after
the model's leading special tokens — and a batch of N texts, and returns either class logits (P, N, C)
(access level ``logits``) or predicted labels (P, N) (level ``labels``). The tuner sees nothing else:
no gradients, no hidden states; besides queries it may read the vocabulary-embedding statistics the
random projection is scaled with (``info``), as the paper's setting assumes.

Every (prompt, text) pair evaluated counts as one query; ``calls`` counts requests.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmthink.errors import UserError

LEVELS = ("logits", "labels")


@dataclass(frozen=True)
class BoxInfo:
    n_classes: int
    n_prompt_tokens: int  # L
    embed_dim: int  # D
    embedding_mean: float  # mean of every entry of the vocabulary embedding matrix
    embedding_std: float
    level: str  # logits | labels


class BlackBox:
    """Shared bookkeeping: access level, query counting and the (P, N) shape checks."""

    info: BoxInfo

    def __init__(self) -> None:
        self.queries = 0
        self.calls = 0

    def logits(self, prompts: Tensor | None, texts: list[str]) -> Tensor:
        """(P, N, C) class logits; P = 1 when ``prompts`` is None (no prompt tokens: zero-shot)."""
        if self.info.level != "logits":
            raise UserError("this black box answers with labels only (level 'labels'); use abc_smc")
        return self._count(prompts, texts, self._logits(self._check(prompts), texts))

    def labels(self, prompts: Tensor | None, texts: list[str]) -> Tensor:
        """(P, N) predicted class indices."""
        return self._count(prompts, texts, self._labels(self._check(prompts), texts))

    def _labels(self, prompts: Tensor | None, texts: list[str]) -> Tensor:
        return self._logits(prompts, texts).argmax(-1)

    def _check(self, prompts: Tensor | None) -> Tensor | None:
        if prompts is None:
            return None
        i = self.info
        if prompts.dim() != 3 or tuple(prompts.shape[1:]) != (i.n_prompt_tokens, i.embed_dim):
            raise ValueError(f"prompts must be (P, {i.n_prompt_tokens}, {i.embed_dim}); got {tuple(prompts.shape)}")
        return prompts.float()

    def _count(self, prompts: Tensor | None, texts: list[str], out: Tensor) -> Tensor:
        self.calls += 1
        self.queries += (1 if prompts is None else len(prompts)) * len(texts)
        return out

    def _logits(self, prompts: Tensor | None, texts: list[str]) -> Tensor:
        raise NotImplementedError


def verbalizer_ids(tokenizer, words: list[str]) -> list[int]:
    """The first token of " word" for each class word; distinct first tokens are required."""
    ids = []
    for w in words:
        toks = tokenizer(" " + w.strip(), add_special_tokens=False).input_ids
        if not toks:
            raise UserError(f"verbalizer word '{w}' tokenizes to nothing")
        ids.append(toks[0])
    if len(set(ids)) != len(ids):
        raise UserError(f"verbalizer words {words} share a first token; pick words that start differently")
    return ids


class HFBlackBox(BlackBox):
    """A local transformers model behind the black-box interface: causal or masked LM plus a verbalizer.

    ``template`` holds ``{text}`` and ``{mask}``. A causal LM reads the template up to ``{mask}`` and
    scores the next-token logit of each verbalizer word (what follows ``{mask}`` is dropped); for a
    masked LM ``{mask}`` becomes the mask token and the class scores are the logits at that position.
    """

    def __init__(self, model, tokenizer, template: str, verbalizer: list[str], n_prompt_tokens: int,
                 level: str = "logits", batch_size: int = 32, max_length: int = 256,
                 placeholder: str | None = None) -> None:
        super().__init__()
        if level not in LEVELS:
            raise UserError(f"black-box level must be one of {LEVELS}; got '{level}'")
        if "{text}" not in template or "{mask}" not in template:
            raise UserError(f"template must contain {{text}} and {{mask}}; got '{template}'")
        self.model, self.tok = model.eval(), tokenizer
        self.masked = "MaskedLM" in type(model).__name__
        if self.masked and tokenizer.mask_token is None:
            raise UserError("this masked LM's tokenizer has no mask token")
        self.template, self.batch_size, self.max_length = template, batch_size, max_length
        self.class_ids = torch.tensor(verbalizer_ids(tokenizer, verbalizer))
        self.placeholder_id = self._placeholder(placeholder)
        emb = model.get_input_embeddings().weight.detach().float()
        self.info = BoxInfo(len(verbalizer), n_prompt_tokens, emb.shape[1], float(emb.mean()), float(emb.std()), level)

    def _placeholder(self, placeholder: str | None) -> int:
        t = self.tok
        if placeholder is None:
            for cand in (t.unk_token_id, t.pad_token_id, t.eos_token_id):
                if cand is not None:
                    return cand
            return 0
        ids = t(placeholder, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise UserError(f"box.placeholder '{placeholder}' must be a single token; it is {len(ids)}")
        return ids[0]

    def _body(self, text: str) -> str:
        body = self.template.replace("{text}", text.strip())
        if self.masked:
            return body.replace("{mask}", self.tok.mask_token)
        return body[: body.index("{mask}")].rstrip()

    def encode(self, text: str, n_prompt: int) -> tuple[list[int], int, int]:
        """(ids, first prompt position, scored position) of one text, prompts after the leading specials."""
        t = self.tok
        inner = t(self._body(text), add_special_tokens=False).input_ids
        full = t(self._body(text), add_special_tokens=True).input_ids
        excess = len(full) + n_prompt - self.max_length
        if excess > 0:  # shorten the text, never the template: the scored position must survive
            text_ids = t(text, add_special_tokens=False).input_ids
            text = t.decode(text_ids[: max(len(text_ids) - excess - 1, 1)])
            inner = t(self._body(text), add_special_tokens=False).input_ids
            full = t(self._body(text), add_special_tokens=True).input_ids
        # Leading special tokens (BOS, <s>) are whatever the tokenizer puts before the body.
        lead = next((i for i in range(len(full) - len(inner) + 1) if full[i : i + len(inner)] == inner), 0)
        if self.masked:
            ids = full[:lead] + [self.placeholder_id] * n_prompt + full[lead:]
            return ids, lead, ids.index(t.mask_token_id)
        ids = full[:lead] + [self.placeholder_id] * n_prompt + inner  # no trailing EOS: the last token is scored
        return ids, lead, len(ids) - 1

    @torch.no_grad()
    def _logits(self, prompts: Tensor | None, texts: list[str]) -> Tensor:
        n_prompt = 0 if prompts is None else self.info.n_prompt_tokens
        rows = [self.encode(x, n_prompt) for x in texts]
        n_p = 1 if prompts is None else len(prompts)
        pairs = [(p, n) for p in range(n_p) for n in range(len(texts))]
        pairs.sort(key=lambda pn: len(rows[pn[1]][0]))  # batches of similar lengths: less padding to compute
        embed = self.model.get_input_embeddings()
        out = torch.empty(n_p, len(texts), self.info.n_classes)
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            width = max(len(rows[n][0]) for _, n in chunk)
            pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.long)
            shift = []
            for b, (_, n) in enumerate(chunk):
                seq = rows[n][0]
                # Causal LMs are left-padded so the scored token is last; masked LMs right-padded.
                off = 0 if self.masked else width - len(seq)
                ids[b, off : off + len(seq)] = torch.tensor(seq)
                mask[b, off : off + len(seq)] = 1
                shift.append(off)
            dev = embed.weight.device
            x = embed(ids.to(dev)).float()
            if prompts is not None:
                for b, (p, n) in enumerate(chunk):
                    s = shift[b] + rows[n][1]
                    x[b, s : s + n_prompt] += prompts[p].to(dev)
            x = x.to(embed.weight.dtype)
            if self.masked:
                logits = self.model(inputs_embeds=x, attention_mask=mask.to(dev)).logits
                pos = torch.tensor([rows[n][2] for _, n in chunk])
                h = logits[torch.arange(len(chunk)), pos.to(dev)]
            else:
                position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
                h = self.model(inputs_embeds=x, attention_mask=mask.to(dev), position_ids=position_ids.to(dev),
                               logits_to_keep=1).logits[:, -1]
            scores = h[:, self.class_ids.to(dev)].float().cpu()
            for b, (p, n) in enumerate(chunk):
                out[p, n] = scores[b]
        return out


class LabelOnly(BlackBox):
    """Wraps any black box so that it answers with labels only (the likelihood-free setting)."""

    def __init__(self, box: BlackBox) -> None:
        super().__init__()
        self.box = box
        self.info = BoxInfo(**{**box.info.__dict__, "level": "labels"})

    def _labels(self, prompts: Tensor | None, texts: list[str]) -> Tensor:
        return self.box._labels(prompts, texts)


def load_hf_model(name: str, dtype: str = "float32", device: str | None = None):
    """(model, tokenizer) in eval mode of a tiny preset, shipped model, hub id or folder: a masked LM
    when the config's architectures name one, a causal LM otherwise."""
    from mmthink.models.loading import resolve_path
    from mmthink.models.presets import TINY_PRESETS, build_tiny

    if name in TINY_PRESETS:
        model, tok, _ = build_tiny(name, 0)
    else:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

        path = str(resolve_path(name))
        try:
            archs = AutoConfig.from_pretrained(path).architectures or []
            auto = AutoModelForMaskedLM if any("MaskedLM" in a for a in archs) else AutoModelForCausalLM
            tok, model = AutoTokenizer.from_pretrained(path), auto.from_pretrained(path, dtype=getattr(torch, dtype))
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load model '{name}': {str(e).splitlines()[0]}") from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), tok
