"""Batched decoding with latent tokens (Mirage's "machine mental imagery"), on stock transformers.

A row decodes text until it emits ``<|latent_start|>``. From then on, each step feeds the row's own
previous last-layer (final-norm) hidden state as the next input embedding, recording
``<|latent_pad|>`` in the token ids, until the model's prediction at a latent position is
``<|latent_end|>`` or ``max_latent`` vectors were fed; ``<|latent_end|>`` is then emitted and text
decoding resumes. ``max_new_tokens`` counts text tokens (``<|latent_start|>`` included); a block's
``<|latent_pad|>`` steps and its ``<|latent_end|>`` are bounded by ``max_latent`` instead, so a latent
block never eats the answer's budget. Who decides to close a block: the argmax of the latent step's
logits (``latent_stop="argmax"``), or the sampled token (``"sampled"``, the official rule). Rows enter and leave latent mode independently: every step is ONE forward of the
whole batch through the KV cache, with input embeddings mixed per row (token embedding or hidden
state). Position ids are passed explicitly per row (1-D for text LMs, Qwen-VL's 3-D M-RoPE ids for
image-text models), so cached steps continue exactly where a full forward would put them.

The official implementation keeps latent mode as one global flag and so decodes one row at a time.

``DecodeBatch`` is the step-wise engine under ``latent_generate``: rows carry their own sampling
settings (temperature, top-p, seed, budget, log-probs), leave the batch when done, and new rows join
between steps (continuous batching for ``mmthink serve``): a joining row is prefilled on its own and
its KV cache left-padded into the batch's, which positions passed per row make exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

LATENT_MODES = ("model", "zeros", "noise", "target")
LATENT_STOPS = ("argmax", "sampled")


@dataclass(frozen=True)
class LatentTokens:
    start: int
    pad: int
    end: int

    @classmethod
    def from_tokenizer(cls, tokenizer, names=("<|latent_start|>", "<|latent_pad|>", "<|latent_end|>")):
        ids = [tokenizer.convert_tokens_to_ids(n) for n in names]
        if any(i is None or i == tokenizer.unk_token_id for i in ids):
            raise ValueError(f"the tokenizer lacks the latent tokens {names}; add them as special tokens first")
        return cls(*ids)


# Ids no tokenizer produces: decoding with these never enters latent mode.
NO_LATENT = LatentTokens(-1, -1, -1)


@dataclass
class LatentOutput:
    sequences: "object"  # (B, T) generated ids: text tokens, latent_start / latent_pad / latent_end
    latent_steps: "object"  # (B,) latent vectors fed per row
    inputs_embeds: "object" = None  # (B, T-1, H) what was fed after the prompt (with return_inputs)


def decoder(model):
    """The decoder stack under the LM head (``*ForCausalLM.model``), through a peft wrapper when there is one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model


def prefill_positions(model, input_ids, attention_mask, image_grid_thw=None, mm_token_type_ids=None):
    """Position ids of a left-padded prompt and each row's next position.

    Text LMs: p_t = (number of real tokens before t). Qwen-VL with images: the model's own 3-D M-RoPE
    ids (image tokens share compressed positions), shape (3, B, L); the next position is max + 1.
    """
    base = decoder(model)
    if image_grid_thw is not None and hasattr(base, "get_rope_index"):
        pos, _ = base.get_rope_index(input_ids, mm_token_type_ids=mm_token_type_ids,
                                     image_grid_thw=image_grid_thw, attention_mask=attention_mask)
        pos = pos.masked_fill(attention_mask[None] == 0, 0)
        return pos, pos.amax(dim=(0, 2)) + 1
    pos = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    if _uses_mrope(model):
        return pos[None].expand(3, -1, -1), pos[:, -1] + 1
    return pos, pos[:, -1] + 1


def _uses_mrope(model) -> bool:
    return hasattr(decoder(model), "get_rope_index")


def _step_positions(model, next_pos):
    pos = next_pos[:, None]
    return pos[None].expand(3, -1, -1) if _uses_mrope(model) else pos


def sample_next(logits, do_sample: bool, temperature: float, top_p: float, generator=None):
    """Greedy argmax, or a sample from softmax(logits / T) restricted to the smallest top-p nucleus."""
    import torch

    if not do_sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        # keep a token while the mass before it is < top_p (the top token is always kept)
        keep = (sorted_p.cumsum(-1) - sorted_p) < top_p
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
    # Inverse-CDF sampling, one uniform per row: the same distribution as torch.multinomial, at a
    # fraction of its cost on 50k-token vocabularies. right=True never picks a zero-probability token.
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp(max=probs.shape[-1] - 1).squeeze(-1)


def sample_rows(logits, temperature, top_p, generators, shared=None):
    """``sample_next`` with per-row settings: temperature (B,) (<= 0: greedy), top_p (B,), and one
    generator per row (None: ``shared``), so a row draws the same tokens whatever batch it is in."""
    import torch

    greedy = temperature <= 0
    probs = torch.softmax(logits.float() / torch.where(greedy, 1.0, temperature)[:, None], dim=-1)
    if bool((top_p < 1.0).any()):  # the sort is the costly part on large vocabularies: only when a row needs it
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        keep = ((sorted_p.cumsum(-1) - sorted_p) < top_p[:, None]) | (top_p[:, None] >= 1.0)
        probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p * keep)
    cdf = probs.cumsum(-1)
    u = torch.cat([torch.rand(1, generator=g if g is not None else shared, device=probs.device, dtype=cdf.dtype)
                   for g in generators])[:, None] * cdf[:, -1:]
    drawn = torch.searchsorted(cdf, u, right=True).clamp(max=probs.shape[-1] - 1).squeeze(-1)
    return torch.where(greedy, logits.argmax(-1), drawn)


def _latent_input(mode: str, hidden, targets, count, generator):
    """What a latent slot receives: the model's hidden state, or an ablation replacing it."""
    import torch

    if mode == "model":
        return hidden
    if mode == "zeros":
        return torch.zeros_like(hidden)
    if mode == "noise":
        # Gaussian noise with each row's hidden-state norm, so only the direction carries no signal.
        noise = torch.randn(hidden.shape, generator=generator, device=hidden.device, dtype=hidden.dtype)
        return noise / noise.norm(dim=-1, keepdim=True) * hidden.norm(dim=-1, keepdim=True)
    if mode == "target":
        k = targets.shape[1]
        return targets[torch.arange(hidden.shape[0], device=hidden.device), count.clamp(max=k - 1)].to(hidden.dtype)
    raise ValueError(f"unknown latent mode {mode!r}; expected one of {LATENT_MODES}")


@dataclass
class RowSettings:
    """How one row decodes. ``temperature`` <= 0 is greedy; ``logprobs``: None, or how many top
    alternatives to report beside the chosen token's log-probability (0: the chosen one only)."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    generator: "object" = None  # a torch.Generator of the row's own (a request's seed); None: the batch's
    max_latent: int = 8
    min_latent: int = 0
    logprobs: Optional[int] = None
    latent_mode: Optional[str] = None  # None: the batch's; model | zeros | noise (target needs the batch's targets)


@dataclass
class StepRow:
    """What one row did in one step."""

    key: "object"
    token: int
    text: bool  # a text token (not a latent pad or end)
    done: bool
    logprob: Optional[float] = None
    top: list = field(default_factory=list)  # [(token id, logprob)], most likely first


class DecodeBatch:
    """Rows decoding together: ``add`` prefills new rows and merges them in, ``step`` advances every
    row by one token (one forward of the whole batch), finished rows leave by themselves, ``drop``
    removes rows (a client gone). Rows are named by the ``keys`` given to ``add``."""

    def __init__(self, model, latent: Optional[LatentTokens], eos_token_ids, pad_token_id: int,
                 latent_mode: str = "model", latent_stop: str = "argmax", generator=None):
        import torch

        if latent_mode not in LATENT_MODES:
            raise ValueError(f"unknown latent mode {latent_mode!r}; expected one of {LATENT_MODES}")
        if latent_stop not in LATENT_STOPS:
            raise ValueError(f"unknown latent stop rule {latent_stop!r}; expected one of {LATENT_STOPS}")
        self.model, self.latent = model, latent or NO_LATENT
        self.pad_token_id, self.mode, self.stop_rule, self.generator = pad_token_id, latent_mode, latent_stop, generator
        self.device = model.get_input_embeddings().weight.device
        self.eos = torch.tensor(sorted(set(eos_token_ids)), device=self.device, dtype=torch.long)
        self.keys: list = []
        self.settings: list[RowSettings] = []
        self.cache = None
        self.targets = None

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, keys, input_ids, attention_mask, settings, latent_targets=None, shared_prefix: int = 1,
            **vision_inputs) -> None:
        """Prefill a left-padded block of prompts and merge it into the batch.

        ``shared_prefix=G``: rows come in runs of G identical prompts (text only), prefilled once each.
        ``latent_targets`` (B, K, H) feed ``target`` mode; only the batch's first block may carry them.
        """
        import torch
        from transformers import DynamicCache

        keys, settings = list(keys), list(settings)
        if self.mode == "target" and (latent_targets is None or self.keys):
            raise ValueError("latent_mode='target' needs latent_targets, given with the batch's only block")
        model, batch = self.model, input_ids.shape[0]
        cache = DynamicCache(config=model.config)
        g = shared_prefix if shared_prefix > 1 and not vision_inputs and batch % shared_prefix == 0 else 1
        pos, next_pos = prefill_positions(model, input_ids[::g], attention_mask[::g], vision_inputs.get("image_grid_thw"),
                                          vision_inputs.get("mm_token_type_ids"))
        out = decoder(model)(input_ids=input_ids[::g], attention_mask=attention_mask[::g], position_ids=pos, cache=cache,
                          use_cache=True, **vision_inputs)
        hidden = out.last_hidden_state[:, -1]
        if g > 1:
            cache.batch_repeat_interleave(g)
            hidden, next_pos = hidden.repeat_interleave(g, dim=0), next_pos.repeat_interleave(g, dim=0)
        zeros = torch.zeros(batch, dtype=torch.long, device=self.device)
        state = {
            "hidden": hidden, "next_pos": next_pos, "mask": attention_mask,
            "in_latent": input_ids[:, -1] == self.latent.start,  # the prompt opened (or continues) a block
            "n_latent": zeros, "in_block": zeros.clone(), "n_text": zeros.clone(),
        }
        if self.cache is None:
            self.cache, self.state, self.targets = cache, state, latent_targets
        else:
            self._merge(cache, state)
        self.keys += keys
        self.settings += settings
        self._refresh()

    def _merge(self, cache, state) -> None:
        import torch

        old, new = self.state["mask"].shape[1], state["mask"].shape[1]
        width = max(old, new)
        for mine, theirs in zip(self.cache.layers, cache.layers):
            if getattr(mine, "is_sliding", False) or not hasattr(mine, "keys"):
                raise ValueError("rows can join a running batch only with a plain (non-sliding) KV cache")
            mine.keys, mine.values = (torch.cat([_left_pad(a, width, -2), _left_pad(b, width, -2)])
                                      for a, b in ((mine.keys, theirs.keys), (mine.values, theirs.values)))
        mask = torch.cat([_left_pad(self.state["mask"], width, 1), _left_pad(state["mask"], width, 1)])
        self.state = {k: torch.cat([self.state[k], state[k]]) for k in self.state if k != "mask"} | {"mask": mask}

    def _refresh(self) -> None:
        """Per-row settings as tensors, rebuilt when rows join or leave."""
        import torch

        s, dev = self.settings, self.device
        self.max_new = torch.tensor([r.max_new_tokens for r in s], device=dev)
        self.max_latent = torch.tensor([r.max_latent for r in s], device=dev)
        self.min_latent = torch.tensor([r.min_latent for r in s], device=dev)
        self.temperature = torch.tensor([r.temperature for r in s], device=dev, dtype=torch.float32)
        self.top_p = torch.tensor([r.top_p for r in s], device=dev, dtype=torch.float32)
        self.uniform = len({(r.temperature, r.top_p) for r in s}) <= 1 and all(r.generator is None for r in s)
        self.row_modes = {r.latent_mode or self.mode for r in s}
        if not self.row_modes <= set(LATENT_MODES) or ("target" in self.row_modes and self.mode != "target"):
            raise ValueError(f"a row's latent mode must be one of {LATENT_MODES[:3]} (target: the batch's only)")
        self.want_logprobs = max((r.logprobs for r in s if r.logprobs is not None), default=None)

    def drop(self, keys) -> None:
        """Remove rows by key (finished elsewhere, or their client went away)."""
        gone = set(keys)
        keep = [i for i, k in enumerate(self.keys) if k not in gone]
        if len(keep) == len(self.keys):
            return
        self._select(keep)

    def _select(self, keep: list) -> None:
        import torch

        self.keys = [self.keys[i] for i in keep]
        self.settings = [self.settings[i] for i in keep]
        if not keep:
            self.cache, self.targets = None, None
            return
        idx = torch.tensor(keep, device=self.device)
        self.cache.batch_select_indices(idx)
        self.state = {k: v[idx] for k, v in self.state.items()}
        if self.targets is not None:
            self.targets = self.targets[idx]
        # Columns no remaining row attends to (left padding of rows that left) are cut away.
        live = self.state["mask"].any(0).nonzero()
        first = int(live[0]) if len(live) else 0
        if first > 0:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            self.state["mask"] = self.state["mask"][:, first:]
        self._refresh()

    def _choose(self, logits):
        if self.uniform:
            r = self.settings[0]
            return sample_next(logits, r.temperature > 0, r.temperature if r.temperature > 0 else 1.0, r.top_p,
                               self.generator)
        return sample_rows(logits, self.temperature, self.top_p, [r.generator for r in self.settings], self.generator)

    def step(self, on_token=None) -> list[StepRow]:
        """One token for every row; rows that finish leave the batch. ``on_token(tokens)`` ((B,) ids of this
        step, rows in ``self.keys`` order) may return a (B,) bool of text rows to finish now (stop strings)."""
        import torch

        st, lt = self.state, self.latent
        hidden, in_latent, in_block = st["hidden"], st["in_latent"], st["in_block"]
        logits = self.model.get_output_embeddings()(hidden)
        chosen = self._choose(logits)
        # In latent mode the model only decides whether to close the block.
        decides = chosen if self.stop_rule == "sampled" else logits.argmax(-1)
        wants_end = ((decides == lt.end) & (in_block >= self.min_latent)) | (in_block >= self.max_latent)
        close, stay = in_latent & wants_end, in_latent & ~wants_end
        token = torch.where(stay, torch.full_like(chosen, lt.pad), chosen)
        token = torch.where(close, torch.full_like(chosen, lt.end), token)

        n_text = st["n_text"] + (~in_latent).long()
        done = (~in_latent & torch.isin(token, self.eos)) | (n_text >= self.max_new)
        if on_token is not None:
            stop = on_token(token)
            if stop is not None:
                done = done | (~in_latent & stop.to(self.device))
        opening = ~in_latent & ~done & (token == lt.start)
        rows = self._report(token, in_latent, done, logits)

        st["n_latent"] = st["n_latent"] + stay.long()
        st["n_text"] = n_text
        st["in_block"] = torch.where(opening, 0, in_block + stay.long())
        st["in_latent"] = stay | opening
        vec = _latent_input(self.mode, hidden, self.targets, st["in_block"] - 1, self.generator)
        for mode in self.row_modes - {self.mode}:  # rows asking for another latent ablation
            rows_of = torch.tensor([(r.latent_mode or self.mode) == mode for r in self.settings], device=self.device)
            vec = torch.where(rows_of[:, None], _latent_input(mode, hidden, None, None, self.generator), vec)
        inputs = torch.where(stay[:, None], vec, self.model.get_input_embeddings()(token)).unsqueeze(1)
        self.step_keys, self.step_inputs = list(self.keys), inputs  # what each row would be fed next
        keep = (~done).nonzero().squeeze(-1)
        if len(keep) < len(self.keys):
            self._select(keep.tolist())
            if not len(self):
                return rows
            inputs = inputs[keep]
        st = self.state
        st["mask"] = torch.cat([st["mask"], torch.ones_like(st["mask"][:, :1])], dim=1)
        out = decoder(self.model)(inputs_embeds=inputs, attention_mask=st["mask"],
                               position_ids=_step_positions(self.model, st["next_pos"]), cache=self.cache, use_cache=True)
        st["next_pos"] = st["next_pos"] + 1
        st["hidden"] = out.last_hidden_state[:, -1]
        return rows

    def _report(self, token, in_latent, done, logits) -> list[StepRow]:
        import torch

        text = ~in_latent
        lp = top_ids = top_lp = None
        if self.want_logprobs is not None:
            logp = torch.log_softmax(logits.float(), dim=-1)
            lp = logp.gather(-1, token[:, None]).squeeze(-1).tolist()
            if self.want_logprobs > 0:
                top_lp, top_ids = (t.tolist() for t in logp.topk(self.want_logprobs, dim=-1))
        rows = []
        for i, (key, tok, is_text, fin) in enumerate(zip(self.keys, token.tolist(), text.tolist(), done.tolist())):
            row = StepRow(key, tok, is_text, fin)
            want = self.settings[i].logprobs
            if want is not None and is_text:
                row.logprob = lp[i]
                row.top = list(zip(top_ids[i][:want], top_lp[i][:want])) if want > 0 else []
            rows.append(row)
        return rows


def _left_pad(x, width: int, dim: int):
    import torch

    missing = width - x.shape[dim]
    if missing == 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=x.dtype, device=x.device), x], dim=dim)


def latent_generate(
    model,
    input_ids,
    attention_mask,
    latent: Optional[LatentTokens],
    max_new_tokens: int,
    eos_token_ids,
    pad_token_id: int,
    max_latent: int = 8,
    min_latent: int = 0,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    latent_mode: str = "model",
    latent_stop: str = "argmax",
    latent_targets=None,
    generator=None,
    return_inputs: bool = False,
    should_stop=None,
    shared_prefix: int = 1,
    **vision_inputs,
) -> LatentOutput:
    """Decode a left-padded batch with latent tokens; see the module docstring.

    ``vision_inputs`` (pixel_values, image_grid_thw, mm_token_type_ids) go to the prefill only.
    ``latent_targets`` (B, K, H) feed the ground-truth pooled image embeddings in ``target`` mode.
    A prompt that ends with ``<|latent_start|>`` starts in latent mode. A prediction of
    ``<|latent_end|>`` is honoured once ``min_latent`` vectors of the block were fed.
    With ``latent_stop="sampled"`` the sampled token closes the block (argmax when not sampling).
    ``latent=None`` decodes plain text (any causal LM). ``should_stop(tokens)`` (tokens: (B, t) ids
    so far) returns a (B,) bool of rows to finish after their last token (e.g. on a stop string).
    ``shared_prefix=G`` says rows come in runs of G identical prompts (a GRPO group): each prompt is
    prefilled once and its cache repeated G times (text-only inputs).
    Finished rows leave the batch; their remaining columns hold ``pad_token_id``.
    """
    import torch

    batch = input_ids.shape[0]
    dec = DecodeBatch(model, latent, eos_token_ids, pad_token_id, latent_mode, latent_stop, generator)
    row = RowSettings(max_new_tokens, temperature if do_sample else 0.0, top_p, None, max_latent, min_latent)
    dec.add(range(batch), input_ids, attention_mask, [row] * batch, latent_targets, shared_prefix, **vision_inputs)
    everyone = torch.arange(batch, device=dec.device)
    pad_embed = model.get_input_embeddings()(torch.tensor([pad_token_id], device=dec.device))[0]
    history, fed, latent_steps = [], [], torch.zeros(batch, dtype=torch.long, device=dec.device)

    def spread(values, keys, fill):  # rows still decoding -> the whole batch, ``fill`` for finished rows
        full = fill.clone()
        full[torch.tensor(keys, dtype=torch.long, device=dec.device)] = values
        return full

    def stop_rows(step_tokens):
        seen = torch.stack(history + [spread(step_tokens, dec.keys, torch.full_like(everyone, pad_token_id))], dim=1)
        return should_stop(seen)[torch.tensor(dec.keys, dtype=torch.long, device=seen.device)]

    while len(dec):
        rows = dec.step(stop_rows if should_stop is not None else None)
        keys = [r.key for r in rows]
        history.append(spread(torch.tensor([r.token for r in rows], device=dec.device), keys,
                              torch.full_like(everyone, pad_token_id)))
        latent_steps += spread(torch.tensor([int(not r.text and r.token == dec.latent.pad) for r in rows],
                                            device=dec.device), keys, torch.zeros_like(everyone))
        if return_inputs:
            fed.append(spread(dec.step_inputs.to(pad_embed.dtype), dec.step_keys, pad_embed.expand(batch, 1, -1)))
    fed = fed[:-1]  # the last step's inputs are never fed
    return LatentOutput(torch.stack(history, dim=1), latent_steps, torch.cat(fed, dim=1) if fed else None)
