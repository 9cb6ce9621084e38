"""``mmthink train vca --dry-run``: VCA trains nothing, so this checks what a real exploration needs: the
VLM at real size, the longest call (memory frames + one expansion, at ``backend.image_side``) and its
memory per device, and one call's prompt through the real processor and a two-layer model of the real
widths. An endpoint backend places nothing here: the endpoint serves the model."""

from __future__ import annotations

import math

from mmthink.errors import UserError
from mmthink.methods.vca.config import VCARecipe
from mmthink.methods.vca.prompts import Call, Frame, text_parts

TEXT_TOKENS = 600  # the prompt's words, the options and the history lines, with room to spare


def longest_call_frames(cfg: VCARecipe) -> int:
    """Frames in the largest call: the memory's boundary frames and the expanded segment's, within the budget."""
    s = cfg.search
    return min(s.frame_budget, max(s.initial_frames, 2 * s.memory + s.frames_per_expansion + 2))


def tokens_per_frame(side: int, patch: int = 14, merge: int = 2) -> int:
    """Merged vision tokens of a square frame of ``side`` pixels (Qwen2.5-VL rounds to 28-pixel cells)."""
    cells = max(1, round(side / (patch * merge)))
    return cells * cells


def dry_run(cfg: VCARecipe, target) -> dict:
    from mmthink.models.paper import count_parameters
    from mmthink.runner import dryrun

    cfg.check()
    b = cfg.backend
    frames = longest_call_frames(cfg)
    if b.kind != "hf":
        report = dryrun.Report(f"video-explore with the {b.kind} backend ({b.endpoint or 'scripted scorer'})")
        report.fact("longest call", f"{frames} frames at up to {b.image_side} px, {b.max_new_tokens} new tokens")
        report.fact("device memory", "none here: the endpoint (or the scripted scorer) answers the calls")
        return dryrun.finish(report, target)
    pm, meta, _ = dryrun.lm_surgery(b.model)
    vision = getattr(pm.config, "vision_config", None)
    if vision is None:
        raise UserError(f"backend.model.name={b.model.name} is not a Qwen-VL-class image-text model; VCA needs one")
    patch, merge = getattr(vision, "patch_size", 14), getattr(vision, "spatial_merge_size", 2)
    per_frame = tokens_per_frame(b.image_side, patch, merge)
    tokens = frames * (per_frame + 12) + TEXT_TOKENS  # + "Frame k (t=...)" and the vision start/end tokens
    report = dryrun.Report(f"video-explore with {b.model.name} (config: {pm.source})")
    report.fact("parameters", f"{count_parameters(meta)[0]:,} (inference only)")
    report.fact("longest call", f"{frames} frames x {per_frame} vision tokens at {b.image_side} px + text: "
                f"about {tokens:,} tokens, then {b.max_new_tokens} new")
    report.fact("calls per question", f"at most {1 + cfg.search.max_expansions} scoring + 1 answer")
    report.estimates["one call"] = dryrun.inference_estimate(meta, b.model, 1, tokens, target, b.max_new_tokens)
    dryrun.shape_check("a VCA call", lambda: _shape_check(pm, b, report))
    return dryrun.finish(report, target)


def _shape_check(pm, b, report) -> None:
    import torch
    from PIL import Image

    from mmthink.models.presets import tiny_image_processor
    from mmthink.ops.vlm import LocalVLM
    from mmthink.runner import dryrun

    tok = dryrun.test_tokenizer(pm)
    model = dryrun.lm_shape_model(pm, b.model, tok)
    frames = [Frame(k + 1, 10.0 * k, k) for k in range(3)]
    call = Call("score", "Which digit appears?", ["1", "2"], frames, [(1, 2, 0.0, 10.0), (2, 3, 10.0, 20.0)])
    image = Image.new("RGB", (56, 56), (200, 40, 40))
    parts = [(k, v) if k == "text" else ("image", image) for k, v in text_parts(call)]
    vlm = LocalVLM(model, tok, tiny_image_processor(), b.model.name)
    ids, vision = vlm.inputs(parts)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **vision).logits
    if not math.isfinite(float(logits[0, -1].float().abs().max())):
        raise UserError("dry run: a VCA call's logits are not finite at the paper's widths")
    report.fact("shape check", f"2-layer model of the real widths: one scoring call of {ids.shape[1]} tokens "
                f"with 3 frames, logits {tuple(logits.shape)}")
