"""VSP evaluation of a Mirage model: batched latent decoding, then the official scoring rules."""

from __future__ import annotations


from mmthink.methods.mirage.data import ImageRoots, open_image, prompt_text, vision_tokens
from mmthink.methods.mirage.losses import pooled_latent_targets
from mmthink.ops.latent import LatentTokens, latent_generate
from mmthink.tasks import vsp
from mmthink.models.tokenizer import left_padded


def generate_answers(model, tokenizer, image_processor, rows, images_at: ImageRoots, latent: LatentTokens, k: int,
                     max_new_tokens: int, batch_size: int, max_latent: int, mode: str = "model",
                     do_sample: bool = False, temperature: float = 1.0, min_latent: int = 0, top_p: float = 1.0,
                     latent_stop: str = "argmax"):
    """Decoded answers (special tokens dropped) and latent steps used, one per row."""
    import torch

    answers, steps = [], []
    with left_padded(tokenizer):
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            images = [open_image(images_at, r["image_input"]) for r in chunk]
            pix = image_processor(images=images, return_tensors="pt")
            counts = (pix["image_grid_thw"].prod(-1) // image_processor.merge_size**2).tolist()
            texts = [prompt_text(tokenizer, r["text_input"], n) for r, n in zip(chunk, counts)]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            targets = None
            if mode == "target":
                helper, _ = vision_tokens(model, image_processor, [open_image(images_at, r["image_output"]) for r in chunk])
                targets = torch.stack([pooled_latent_targets(h, max(k, 1)) for h in helper])
            with torch.no_grad():
                out = latent_generate(
                    model, enc["input_ids"], enc["attention_mask"], latent, max_new_tokens,
                    [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id], tokenizer.pad_token_id,
                    max_latent=max_latent, min_latent=min_latent, do_sample=do_sample, temperature=temperature, top_p=top_p,
                    latent_mode=mode, latent_stop=latent_stop,
                    latent_targets=targets, pixel_values=pix["pixel_values"].to(model.device),
                    image_grid_thw=pix["image_grid_thw"].to(model.device),
                    mm_token_type_ids=(enc["input_ids"] == model.config.image_token_id).int(),
                )
            answers += tokenizer.batch_decode(out.sequences, skip_special_tokens=True)
            steps += out.latent_steps.tolist()
    return answers, steps


def evaluate_vsp(model, tokenizer, image_processor, rows, images_at: ImageRoots, latent: LatentTokens, k: int, cfg) -> dict:
    """Accuracy and invalid-answer rate overall and per grid size, and mean latent steps."""
    rows = list(rows)[: cfg.eval.limit] if cfg.eval.limit else list(rows)
    answers, steps = generate_answers(model, tokenizer, image_processor, rows, images_at, latent, k,
                                      cfg.eval.max_new_tokens, cfg.eval.batch_size, cfg.latent.max_len,
                                      cfg.latent.mode, cfg.eval.do_sample, cfg.eval.temperature,
                                      k if cfg.latent.min_len is None else cfg.latent.min_len, cfg.eval.top_p,
                                      cfg.latent.stop)
    report = vsp.score_predictions(rows, answers, cfg.eval.answer_rule)
    report["latent_steps_mean"] = sum(steps) / max(len(steps), 1)
    if any(vsp.task_of(r) == "planning" for r in rows):  # what ignoring the image scores at best, beside it
        plan, acc = vsp.best_constant(rows)
        report["best_constant"] = {"plan": "\\boxed{" + ", ".join(plan) + "}", "accuracy": acc}
    report["samples"] = [{"map_id": r.get("map_id"), "answer": a} for r, a in zip(rows[:5], answers[:5])]
    return report


def flat_metrics(report: dict) -> dict:
    """The report as one row of numbers for logs and tables."""
    out = {"accuracy": report["overall"]["accuracy"], "invalid_rate": report["overall"]["invalid_rate"],
           "n": report["overall"]["n"]}
    for n, r in report["by_n"].items():
        out[f"accuracy_{n}x{n}"] = r["accuracy"]
    out["latent_steps_mean"] = report["latent_steps_mean"]
    if "best_constant" in report:
        out["best_constant_accuracy"] = report["best_constant"]["accuracy"]
    return out
