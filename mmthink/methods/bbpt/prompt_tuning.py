"""The full-access baseline: gradient-based soft-prompt tuning (Lester et al.) through peft.

L virtual tokens are prepended to the input (peft's placement) and trained with AdamW on the
cross-entropy of the verbalizer logits, the model frozen. It needs the model itself, so it runs on
the local black box's model and tokenizer: a reference point, not a black-box method.
"""
from __future__ import annotations

import torch
from torch import Tensor

from mmthink.methods.bbpt.blackbox import HFBlackBox


def _task_type(box: HFBlackBox):
    from peft import TaskType

    # peft's feature-extraction wrapper prepends the prompt and returns the base model's output, which
    # for a masked LM are the vocabulary logits we need.
    return TaskType.FEATURE_EXTRACTION if box.masked else TaskType.CAUSAL_LM


def wrap(box: HFBlackBox, n_tokens: int, seed: int):
    """The box's model with a trainable prompt, initialised from randomly sampled vocabulary embeddings."""
    from peft import PromptTuningConfig, get_peft_model

    cfg = PromptTuningConfig(task_type=_task_type(box), num_virtual_tokens=n_tokens)
    model = get_peft_model(box.model, cfg)
    emb = box.model.get_input_embeddings().weight
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, emb.shape[0], (n_tokens,), generator=g)
    prompt = model.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        prompt.copy_(emb[rows.to(emb.device)].detach().to(prompt.dtype))
    return model


def load(box: HFBlackBox, folder) -> object:
    from peft import PeftModel

    return PeftModel.from_pretrained(box.model, str(folder)).eval()


def class_logits(model, box: HFBlackBox, texts: list[str]) -> Tensor:
    """(N, C) verbalizer logits of the prompt-tuned model (gradients flow when enabled)."""
    n_virtual = model.peft_config["default"].num_virtual_tokens
    rows = [box.encode(t, 0) for t in texts]
    width = max(len(r[0]) for r in rows)
    pad = box.tok.pad_token_id if box.tok.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for b, (seq, _, _) in enumerate(rows):  # right padding: peft prepends the prompt, positions stay plain
        ids[b, : len(seq)] = torch.tensor(seq)
        mask[b, : len(seq)] = 1
    dev = box.model.get_input_embeddings().weight.device
    logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
    pos = torch.tensor([n_virtual + r[2] for r in rows], device=dev)
    return logits[torch.arange(len(rows), device=dev), pos][:, box.class_ids.to(dev)].float()


def train(box: HFBlackBox, texts: list[str], labels: Tensor, n_tokens: int, steps: int, lr: float,
          batch_size: int, seed: int, progress=None) -> tuple[object, list[dict]]:
    """Train the prompt for ``steps`` AdamW steps on minibatches of the training set; returns (model, log)."""
    model = wrap(box, n_tokens, seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    log = []
    for step in range(1, steps + 1):
        idx = torch.randperm(len(texts), generator=g)[:batch_size]
        logits = class_logits(model, box, [texts[i] for i in idx])
        loss = torch.nn.functional.cross_entropy(logits, labels[idx].long().to(logits.device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        log.append({"step": step, "loss": loss.item()})
        if progress:
            progress(1)
    model.eval()
    return model, log


@torch.no_grad()
def predict(model, box: HFBlackBox, texts: list[str]) -> Tensor:
    """(1, N, C) logits, batched like the black box, in the shape of a one-prompt collection."""
    out = [class_logits(model, box, texts[i : i + box.batch_size]).cpu() for i in range(0, len(texts), box.batch_size)]
    return torch.cat(out)[None]
