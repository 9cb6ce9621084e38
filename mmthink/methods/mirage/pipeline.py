"""``mmthink train mirage`` and ``mmthink eval mirage``.

Flow: check the recipe → read and validate the VSP rows → load the VLM, add the three latent tokens
(ids looked up from the tokenizer), freeze the vision tower → cache image features and pooled
helper-image targets → stage 0 (perception: image → the map in words, for an LLM that never saw
images, as the tiny preset's) → stage 1 (latent distillation) → stage 2 (text-only, latent recurrence) →
stage 3 (GRPO over latent rollouts, ``mmthink.rl``) → save ``model/`` and evaluate. Stages 1 and 2
are ``runner.fit`` runs, stage 3 a ``train_rl`` run, each in ``output_dir/stageN``; a stage
whose ``model/`` exists is not run again (its weights are loaded) unless ``runner.resume=never``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Optional, Sequence

from mmthink.config import to_yaml
from mmthink.data.rows import load_rows
from mmthink.errors import UserError
from mmthink.methods.mirage import stages
from mmthink.methods.mirage.config import LATENT_TOKENS, MirageRecipe
from mmthink.methods.mirage.data import ImageRoots, check_images, collate, encode_rows
from mmthink.methods.mirage.evaluate import evaluate_vsp, flat_metrics
from mmthink.methods.mirage.grpo import LatentPolicy
from mmthink.models.loading import is_image_text, load_model
from mmthink.ops.latent import LatentTokens
from mmthink.runner import world_size
from mmthink.runner.checkpoint import save_final, write_eval
from mmthink.runner.session import Stage, run_stages
from mmthink.rl.rewards import check_rewards
from mmthink.rl.trainer import RLTask, rl_runner_config, train_rl
from mmthink.runner.loop import Task, fit, make_accelerator
from mmthink.tasks import vsp
from mmthink.tasks.vsp import validate_vsp_row


def _load_vlm(cfg: MirageRecipe, train: bool):
    if not is_image_text(cfg.model.name):
        raise UserError(f"model '{cfg.model.name}' is not a Qwen-VL-class image-text model; Mirage needs one")
    cfg.model.special_tokens = list(dict.fromkeys(list(cfg.model.special_tokens) + LATENT_TOKENS))
    loaded = load_model(cfg.model, train=train)
    if loaded.image_processor is None or not hasattr(loaded.model.model, "get_rope_index"):
        raise UserError(f"model '{cfg.model.name}' is not a Qwen-VL-class image-text model; Mirage needs one")
    loaded.model.model.visual.requires_grad_(False)  # the vision tower stays frozen in every stage
    return loaded


def train(cfg: MirageRecipe, command: Sequence[str] = ()) -> dict:
    world = world_size()
    cfg.check(world)
    if 3 in cfg.stages:
        check_rewards(cfg.stage3.rewards, "stage3.rewards")  # the VSP rewards are registered by grpo
    train_file = Path(cfg.data.train_file)
    rows = list(load_rows(train_file, validate_vsp_row, cfg.data.limit))
    eval_rows = list(load_rows(cfg.data.eval_file, validate_vsp_row)) if cfg.data.eval_file else None
    train_images = ImageRoots(train_file, cfg.data.image_root, cfg.data.blank_images)
    eval_images = ImageRoots(cfg.data.eval_file, cfg.data.image_root, cfg.data.blank_images) if eval_rows is not None else None
    check_images(rows, train_images, train_file)
    if eval_rows is not None:
        check_images(eval_rows, eval_images, cfg.data.eval_file)
    accelerator = make_accelerator(rl_runner_config(cfg.stage3) if cfg.stages[0] == 3 else cfg._stage(cfg.stages[0]).runner)
    loaded = _load_vlm(cfg, train=True)
    model, tok, proc = loaded.model, loaded.tokenizer, loaded.image_processor
    latent = LatentTokens.from_tokenizer(tok)
    k = cfg.latent.k
    if cfg.model.device_map is None:
        model.to(accelerator.device)  # encode images on the accelerator; prepare() would move it anyway
    latent_ids = (latent.start, latent.pad, latent.end)
    examples = encode_rows(rows, train_images, model, tok, proc, k, latent_ids,
                           cfg.data.max_length) if {1, 2} & set(cfg.stages) else []
    # Stage 0 teaches the LLM to read the image: the same training images, answered with the map in words.
    percepts = encode_rows([dict(r, text_input=vsp.PERCEPTION_PROMPT, text_output=vsp.describe(r["map_desc"]))
                            for r in rows], train_images, model, tok, proc, 0, latent_ids,
                           cfg.data.max_length) if 0 in cfg.stages else []
    image_id = model.config.image_token_id
    out_dir = Path(cfg.output_dir)

    def held_out(m, acc):  # the task's evaluation during and after training
        unwrapped = acc.unwrap_model(m)
        report = evaluate_vsp(unwrapped, tok, proc, eval_rows, eval_images, latent, k, cfg)
        return flat_metrics(report)

    def run_supervised(stage: int, m):
        sc = cfg._stage(stage)
        if stage == 0:  # plain cross-entropy on the map description (stage 1's loss without latent slots)
            task = Task(percepts, partial(collate, pad_id=tok.pad_token_id, k=0, latent_pad_id=latent.pad),
                        partial(stages.stage1, k=0, gamma=1.0, image_token_id=image_id), None, name="mirage-stage0")
        else:
            loss = partial(stages.stage1, k=k, gamma=cfg.latent.gamma, image_token_id=image_id) if stage == 1 else \
                partial(stages.stage2, k=k, image_token_id=image_id)
            task = Task(examples, partial(collate, pad_id=tok.pad_token_id, k=k, latent_pad_id=latent.pad), loss,
                        held_out if eval_rows is not None else None, name=f"mirage-stage{stage}")
        return fit(m, (tok, proc), task, sc.optim, sc.runner, cfg.logging, out_dir / f"stage{stage}", cfg.seed,
                   accelerator, config_yaml=to_yaml(cfg), command=command, settings=f"stage{stage}.runner")

    def run_rl(m):
        policy = LatentPolicy(tok, proc, train_images, latent, cfg.latent.max_len,
                              k if cfg.latent.min_len is None else cfg.latent.min_len)
        task = RLTask(rows, prompt=lambda r: r.get("text_input", ""), evaluate=held_out if eval_rows is not None else None,
                      rollout=policy.rollout, logits=policy.logits, name="mirage-stage3")
        return train_rl(m, tok, task, cfg.stage3, cfg.logging, out_dir / "stage3", cfg.seed, accelerator,
                        config_yaml=to_yaml(cfg), command=command, settings="stage3")

    plan = [Stage(f"stage{s}", out_dir / f"stage{s}", partial(run_supervised, s), cfg._stage(s).runner.resume)
            if s != 3 else Stage("stage3", out_dir / "stage3", run_rl, saves_model=False) for s in cfg.stages]
    model, metrics = run_stages(accelerator, model, (tok, proc), plan)
    save_final(accelerator, model, (tok, proc), out_dir)
    return metrics


def evaluate(cfg: MirageRecipe, checkpoint: str, data: str, out: Optional[str] = None) -> dict:
    """Score ``checkpoint`` on VSP rows; writes ``eval.json`` (per grid size) next to it or to ``out``."""
    cfg.model.name = checkpoint
    rows = list(load_rows(data, validate_vsp_row))
    images = ImageRoots(data, cfg.data.image_root, cfg.data.blank_images)
    check_images(rows, images, data)
    loaded = _load_vlm(cfg, train=False)
    loaded.model.eval()
    latent = LatentTokens.from_tokenizer(loaded.tokenizer)
    report = evaluate_vsp(loaded.model, loaded.tokenizer, loaded.image_processor, rows, images, latent,
                          cfg.latent.k, cfg)
    full = {"data": str(data), "checkpoint": checkpoint, "latent_mode": cfg.latent.mode, **report}
    write_eval(full, out, checkpoint, cfg.output_dir)
    return flat_metrics(report)


def dry_run(cfg: MirageRecipe, target) -> dict:
    """``train mirage --dry-run``: the VSP rows, the VLM at real size with its latent tokens, memory per
    stage, and stage 1's loss and latent decoding through the real code on a two-layer model of the
    real widths (text and vision), images included."""
    import tempfile

    from mmthink.models.paper import count_parameters
    from mmthink.runner import dryrun

    cfg.check(target.gpus)
    if 3 in cfg.stages:
        check_rewards(cfg.stage3.rewards, "stage3.rewards")
    pm, meta, new_ids = dryrun.lm_surgery(cfg.model, LATENT_TOKENS)
    if not hasattr(pm.config, "vision_config"):
        raise UserError(f"model '{cfg.model.name}' is not a Qwen-VL-class image-text model; Mirage needs one")
    meta.model.visual.requires_grad_(False)
    total, trainable = count_parameters(meta)
    report = dryrun.Report(f"train mirage with {cfg.model.name} (config: {pm.source})")
    report.fact("parameters", f"{total:,} ({trainable:,} trainable: the vision tower is frozen)")
    report.fact("accelerate estimate-memory", dryrun.accelerate_figure(meta))
    report.fact("latent tokens", f"ids {list(new_ids)}; {meta.get_input_embeddings().num_embeddings:,} embedding rows")
    for stage in cfg.stages:
        if stage == 3:
            tokens = cfg.data.max_length + cfg.stage3.rollout.max_new_tokens
            report.estimates["stage 3 (GRPO)"] = dryrun.rl_estimate(meta, cfg.model, cfg.stage3, tokens, target)
        else:
            sc = cfg._stage(stage)
            report.estimates[f"stage {stage}"] = dryrun.training_estimate(
                meta, cfg.model, sc.runner.mixed_precision, sc.runner.micro_batch_size, cfg.data.max_length, target)
    report.fact("tokens per sequence", f"data.max_length = {cfg.data.max_length} (an upper bound: batches pad to their longest row)")

    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(cfg.data.train_file)
        if train_file.is_file():
            rows = list(load_rows(train_file, validate_vsp_row, cfg.data.limit))
            report.fact("rows", f"{len(rows)} in {train_file}, all valid")
        else:  # generated data a fresh clone does not have: check the code on two generated rows instead
            train_file, _ = vsp.generate_split(Path(tmp), "planning", cfg.seed, {3: 2}, {3: 1})
            rows = list(load_rows(train_file, validate_vsp_row))
            report.fact("rows", f"{cfg.data.train_file} is not here; checked on {len(rows)} generated rows")
        dryrun.shape_check("stage 1 or latent decoding", lambda: _shape_check(cfg, pm, rows, ImageRoots(train_file, cfg.data.image_root), report))
    return dryrun.finish(report, target)


def _shape_check(cfg: MirageRecipe, pm, rows, images_at, report) -> None:
    import torch

    from mmthink.methods.mirage.data import open_image, prompt_text
    from mmthink.models.presets import tiny_image_processor
    from mmthink.ops.latent import latent_generate
    from mmthink.runner import dryrun

    tok = dryrun.test_tokenizer(pm)
    proc = tiny_image_processor()  # the Qwen2-VL image processor: 14-pixel patches, 2x2 merge
    model = dryrun.lm_shape_model(pm, cfg.model, tok, LATENT_TOKENS)
    latent, k = LatentTokens.from_tokenizer(tok), cfg.latent.k
    examples = encode_rows(rows[:2], images_at, model, tok, proc, k, (latent.start, latent.pad, latent.end),
                           cfg.data.max_length)
    batch = collate(examples, pad_id=tok.pad_token_id, k=k, latent_pad_id=latent.pad)
    with torch.no_grad():
        out = stages.stage1(model, batch, k=k, gamma=cfg.latent.gamma, image_token_id=model.config.image_token_id)
    # A prompt ending in <|latent_start|> opens a latent block: the recurrence runs whatever the weights.
    image = open_image(images_at, rows[0]["image_input"])
    pix = proc(images=[image], return_tensors="pt")
    n_image = int(pix["image_grid_thw"].prod(-1)[0]) // proc.merge_size**2
    enc = tok([prompt_text(tok, rows[0]["text_input"], n_image) + "<|latent_start|>"], return_tensors="pt",
              add_special_tokens=False)
    with torch.no_grad():
        gen = latent_generate(model, enc["input_ids"], enc["attention_mask"], latent, 4, [tok.eos_token_id],
                              tok.pad_token_id, max_latent=max(k, 1), min_latent=max(k, 1),
                              pixel_values=pix["pixel_values"], image_grid_thw=pix["image_grid_thw"],
                              mm_token_type_ids=(enc["input_ids"] == model.config.image_token_id).int())
    steps = gen.latent_steps.tolist()
    report.fact("shape check", f"2-layer model of the real widths: stage-1 loss {float(out.loss_sum) / float(out.num_items):.3f}, "
                               f"latent decoding {steps[0]} latent steps")
