"""Thermometer inside ``mmthink serve --calibrator DIR``: a calibrated confidence for each option of a
multiple-choice request (the registry row hooks it in; the server imports no method).

A request names a question and its options; the options are scored as ``calibrate features`` scores
them (the calibrator records how: letter logits or cloze log-likelihoods, chat template or not), the
calibrator maps the prompt's feature to a temperature tau, and each option gets
softmax(scores / tau). Thermometer's task temperature averages the inverse temperatures of a task's
prompts; a single request has one prompt, so its tau is that prompt's own estimate.
"""

from __future__ import annotations

from mmthink.errors import UserError
from mmthink.methods.thermometer.model import dataset_temperature, load_calibrator
from mmthink.methods.thermometer.prompting import letter_token_ids, render_prompt
from mmthink.methods.thermometer.scoring import forward_last
from mmthink.tasks.mcq import LETTERS


class CalibratedChoices:
    def __init__(self, folder, model, tokenizer):
        self.calibrator, info = load_calibrator(folder)
        hidden = model.get_input_embeddings().weight.shape[1]
        if self.calibrator.d != hidden:
            raise UserError(f"the calibrator at {folder} reads {self.calibrator.d}-dim features but the served model's "
                            f"hidden size is {hidden}: serve the LM it was fitted for")
        made = (info.get("training") or {}).get("features") or {}
        self.scoring, self.chat = made.get("scoring", "letters"), bool(made.get("chat", True))
        self.model, self.tokenizer = model, tokenizer
        self.letter_ids = None
        if self.scoring == "letters":
            probe = render_prompt(tokenizer, {"question": "?", "options": ["a", "b"]}, self.chat, "letters")
            self.letter_ids, _ = letter_token_ids(tokenizer, probe, self.chat)
        self.max_options = len(LETTERS) if self.scoring == "letters" else 26

    def score(self, question: str, options: list) -> dict:
        """{"temperature", "scores", "probability" (T = 1), "confidence" (T = tau)} for the options."""
        import torch

        if len(options) > self.max_options:
            raise ValueError(f"this calibrator scores at most {self.max_options} options ({self.scoring} scoring)")
        prompt = render_prompt(self.tokenizer, {"question": question, "options": options}, self.chat, self.scoring)
        with torch.inference_mode():
            if self.scoring == "letters":
                features, scores = forward_last(self.model, self.tokenizer, [prompt], self.chat,
                                                letter_ids=self.letter_ids[: len(options)])
            else:
                features, scores = forward_last(self.model, self.tokenizer, [prompt], self.chat, options=[options])
        tau = dataset_temperature(self.calibrator, features.to(next(self.calibrator.parameters()).device))
        scores = scores[0].double()
        return {"temperature": tau, "scoring": self.scoring, "scores": scores.tolist(),
                "probability": torch.softmax(scores, -1).tolist(), "confidence": torch.softmax(scores / tau, -1).tolist()}


def load(folder, model, tokenizer) -> CalibratedChoices:
    return CalibratedChoices(folder, model, tokenizer)
