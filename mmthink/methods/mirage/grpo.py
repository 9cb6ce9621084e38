"""Mirage stage 3: GRPO over latent rollouts (no official code was released; this is ours).

Rollouts decode with the batched latent op: each row's latent block is fed its own hidden states,
which are deterministic, so only the text tokens are sampled and only they enter the policy gradient
(``Rollout.mask`` is 0 on ``<|latent_pad|>`` and the forced ``<|latent_end|>``). The log-prob pass
rebuilds the recurrence with gradients: prefill up to the first latent column of the batch, one
cached step per column while any row is in a latent block (a latent slot gets the previous hidden
state, other rows their token embedding — the same inputs decoding saw), then the remaining columns
in one forward. Rewards: format (a boxed plan with at least one move) and accuracy (the plan reaches
the goal when simulated), both in {0, 1}, from the VSP evaluator.
"""

from __future__ import annotations


import torch

from mmthink.methods.mirage.data import open_image, prompt_text
from mmthink.ops.latent import LatentTokens, prefill_positions
from mmthink.rl.rewards import register_reward
from mmthink.rl.rollout import Rollout, generate_rollouts, row_indices
from mmthink.tasks import vsp


@register_reward("vsp_format")
def vsp_format(prompt: str, completion: str, row: dict) -> float:
    """1 if the answer is a parsable plan (planning) or choice (reasoning), else 0 (the official parser)."""
    return 0.0 if vsp.score_row(row, completion)["invalid"] else 1.0


@register_reward("vsp_accuracy")
def vsp_accuracy(prompt: str, completion: str, row: dict) -> float:
    """1 if the plan reaches the goal (planning) or the choice is right (reasoning), else 0 (the official parser)."""
    return 1.0 if vsp.score_row(row, completion)["correct"] else 0.0


@register_reward("vsp_format_strict")
def vsp_format_strict(prompt: str, completion: str, row: dict) -> float:
    """vsp_format with the strict parser (eval.answer_rule=strict): only capital moves or move words count."""
    return 0.0 if vsp.score_row(row, completion, "strict")["invalid"] else 1.0


@register_reward("vsp_accuracy_strict")
def vsp_accuracy_strict(prompt: str, completion: str, row: dict) -> float:
    """vsp_accuracy with the strict parser."""
    return 1.0 if vsp.score_row(row, completion, "strict")["correct"] else 0.0


class LatentPolicy:
    """The rollout and log-prob functions of the shared RL loop for a Qwen-VL model with latent tokens."""

    def __init__(self, tokenizer, image_processor, images_at, latent: LatentTokens, max_latent: int,
                 min_latent: int):
        self.tok, self.proc, self.images_at, self.latent = tokenizer, image_processor, images_at, latent
        self.max_latent, self.min_latent = max_latent, min_latent

    def _vision(self, images, input_ids, device, image_token_id: int) -> dict:
        pix = self.proc(images=images, return_tensors="pt")
        return {"pixel_values": pix["pixel_values"].to(device), "image_grid_thw": pix["image_grid_thw"].to(device),
                "mm_token_type_ids": (input_ids == image_token_id).int()}

    def rollout(self, model, rows, prompts, cfg, generator) -> Rollout:
        images = [open_image(self.images_at, r["image_input"]) for r in rows]
        counts = (self.proc(images=images, return_tensors="pt")["image_grid_thw"].prod(-1) // self.proc.merge_size**2)
        texts = [prompt_text(self.tok, r["text_input"], int(n)) for r, n in zip(rows, counts.tolist())]
        image_id = model.config.image_token_id
        r = cfg.rollout
        ro = generate_rollouts(
            model, self.tok, texts, r.group_size, r.max_new_tokens, r.temperature, r.top_p, r.stop, r.batch_size,
            latent=self.latent, latent_kwargs={"max_latent": self.max_latent, "min_latent": self.min_latent},
            generator=generator,
            chunk_inputs=lambda idx, ids: self._vision([images[i] for i in idx], ids, ids.device, image_id),
        )
        ro.extra = {"images": [images[i] for i in ro.prompt_index.tolist()], "image_token_id": image_id}
        return ro

    def logits(self, model, ro: Rollout, rows, temperature: float = 1.0):
        """Logits / T predicting each completion token of ``rows``, latent recurrence rebuilt: (n, T, V)."""
        from transformers import DynamicCache

        inner = getattr(model, "module", model)
        ids_p, mask_p = ro.prompt_ids[rows], ro.prompt_mask[rows]
        comp, att_c = ro.completion_ids[rows], ro.attention[rows]
        p, t = ids_p.shape[1], comp.shape[1]
        images = [ro.extra["images"][i] for i in row_indices(ro, rows).tolist()]
        vision = self._vision(images, ids_p, ids_p.device, ro.extra["image_token_id"])
        pos_p, next_pos = prefill_positions(inner, ids_p, mask_p, vision["image_grid_thw"], vision["mm_token_type_ids"])
        pos_c = (next_pos[:, None] + torch.arange(t, device=comp.device)[None])[None].expand(3, -1, -1)
        positions = torch.cat([pos_p, pos_c], dim=2)
        mask = torch.cat([mask_p, att_c], dim=1)
        is_latent = comp == self.latent.pad
        cols = is_latent.any(0).nonzero().flatten().tolist()
        first, last = (cols[0], cols[-1]) if cols else (t, t - 1)
        embed = inner.get_input_embeddings()
        cache = DynamicCache(config=inner.config)

        def forward(lo: int, hi: int, **inputs):
            out = model(attention_mask=mask[:, :hi], position_ids=positions[:, :, lo:hi], cache=cache,
                        use_cache=True, output_hidden_states=True, **inputs)
            return out.hidden_states[-1], out.logits

        full_ids = torch.cat([ids_p, comp], dim=1)
        hidden, lg = forward(0, p + first, input_ids=full_ids[:, : p + first], pixel_values=vision["pixel_values"],
                             image_grid_thw=vision["image_grid_thw"],
                             mm_token_type_ids=torch.cat([vision["mm_token_type_ids"],
                                                          torch.zeros_like(comp[:, :first])], dim=1))
        logits = [lg[:, p - 1 :]]
        h = hidden[:, -1:]
        for c in range(first, last + 1):
            step = torch.where(is_latent[:, c, None, None], h, embed(comp[:, c : c + 1]))
            hidden, lg = forward(p + c, p + c + 1, inputs_embeds=step)
            logits.append(lg)
            h = hidden[:, -1:]
        if last + 1 < t:
            _, lg = forward(p + last + 1, p + t, inputs_embeds=embed(comp[:, last + 1 :]))
            logits.append(lg)
        return torch.cat(logits, dim=1)[:, :t].float() / temperature
