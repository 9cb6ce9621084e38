"""Outcome reward models: a sequence-classification model (path or hub id) whose first logit scores a
whole (prompt, response) text. Satori adds it to its RL reward; EvoScale can select by it."""

from __future__ import annotations

from typing import Optional, Sequence

from mmthink.errors import UserError


class OutcomeRewardModel:
    """``score(texts) -> [first logit]``; ``score_pairs`` writes (prompt, response) as the RM's chat when its
    tokenizer has a template (reward models such as Skywork-Reward are trained on chats), else joins them."""

    def __init__(self, name: str, device, batch_size: int = 8, key: str = "reward model",
                 max_length: Optional[int] = None):
        try:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(name)
            self.model = AutoModelForSequenceClassification.from_pretrained(name).to(device).eval()
        except (OSError, ValueError) as e:
            raise UserError(f"{key} '{name}' cannot be loaded: {str(e).splitlines()[0]}") from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size, self.max_length = batch_size, max_length

    def score(self, texts: Sequence[str]) -> list[float]:
        import torch

        out: list[float] = []
        with torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(list(texts[i : i + self.batch_size]), return_tensors="pt", padding=True,
                                     truncation=True, max_length=self.max_length).to(self.model.device)
                out += self.model(**enc).logits[:, 0].float().tolist()
        return out

    def pair_text(self, prompt: str, response: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False)
        return f"{prompt}\n\n{response}"

    def score_pairs(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return self.score([self.pair_text(p, r) for p, r in zip(prompts, responses)])
