"""``mmthink train satori`` and ``mmthink eval satori``.

Flow: check the recipe → math rows (a user's file, or procedural problems generated into
``output_dir/data``) → load the model with the three meta-action tokens → stage ``format``: SFT on
synthetic COAT demonstrations (or plain CoT, the baseline) → stage ``rl``: PPO (or GRPO) on the
problems, with Satori's reward and Restart-and-Explore states mixed into the prompts → round 2, when
the recipe asks: stage ``distill`` (the RL policy's correct solutions fine-tuned into the base model)
→ stage ``rl2`` (the same RL again) → save ``model/`` and evaluate (accuracy, reflect rate,
reflection-fix rate). Each stage runs in ``output_dir/<stage>``; the run starts after the last
finished stage (its ``model/`` exists), unless a stage's ``resume`` is ``never``.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from mmthink.config import to_yaml
from mmthink.methods.satori.coat import REFLECT, coat_sft_rows, cot_sft_rows
from mmthink.methods.satori.config import SatoriRecipe
from mmthink.methods.satori.distill import load_or_sample, sample_solutions
from mmthink.methods.satori.evaluate import chat_prompt, evaluate_math
from mmthink.methods.satori.rae import RestartBuffers, mix_restarts
from mmthink.methods.satori.rewards import satori_reward
from mmthink.models.loading import load_model
from mmthink.models.reward import OutcomeRewardModel
from mmthink.rl.rewards import reward_stats
from mmthink.rl.trainer import RLTask, rl_runner_config, train_rl
from mmthink.runner import world_size
from mmthink.runner.checkpoint import copy_weights, save_final, write_eval
from mmthink.runner.session import Stage, run_stages
from mmthink.runner.loop import fit, make_accelerator
from mmthink.runner.sft import sft_task, tokenize_rows
from mmthink.tasks import math as math_task
from mmthink.tasks.grading import grade


class SatoriRL:
    """The RL stage's pieces the shared loop calls: prompts with restarts, the reward, the buffers."""

    def __init__(self, cfg: SatoriRecipe, tokenizer, device):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.buffers = RestartBuffers(cfg.rae.buffer_size, cfg.rae.max_back)
        self.rm = (OutcomeRewardModel(cfg.reward.outcome_model, device, key="reward.outcome_model")
                   if cfg.reward.outcome_model else None)

    def prompt(self, row: dict) -> str:
        return chat_prompt(self.tokenizer, row)

    def select(self, step: int, rows: list, generator) -> list:
        if not self.cfg.rae.enabled:
            return rows
        return mix_restarts(rows, self.buffers, self.cfg.rae.ratio, random.Random(self.cfg.seed * 7_919 + step))

    def reward(self, prompts, completions, rows, group_size: int) -> tuple[list, dict]:
        rows_of = [rows[i // group_size] for i in range(len(completions))]
        full = [r.get("prefix", "") + c for r, c in zip(rows_of, completions)]
        correct = [grade(f, r["answer"]) for f, r in zip(full, rows_of)]
        scores = self.rm.score([p + c for p, c in zip([prompts[i // group_size] for i in range(len(completions))],
                                                       completions)]) if self.rm else [None] * len(full)
        rc = self.cfg.reward
        totals = [satori_reward(c, r.get("reflect_status", 0), s, rc.reflect_bonus, rc.clip)
                  for c, r, s in zip(correct, rows_of, scores)]
        self._correct = correct
        metrics = reward_stats("reward/total", totals, group_size)
        status = [r.get("reflect_status", 0) for r in rows_of]
        for name, want in (("fresh", 0), ("restart_wrong", -1), ("restart_right", 1)):
            hits = [c for c, s in zip(correct, status) if s == want]
            if hits:
                metrics[f"accuracy/{name}"] = sum(hits) / len(hits)
        metrics["reflect_rate"] = sum(REFLECT in c for c in completions) / len(completions)
        metrics["rae/buffer_positive"] = float(len(self.buffers.positive))
        metrics["rae/buffer_negative"] = float(len(self.buffers.negative))
        if self.rm:
            metrics["reward/outcome_model/mean"] = sum(scores) / len(scores)
        return totals, metrics

    def observe(self, step: int, rows: list, rollout, rewards: list) -> None:
        g = len(rollout.texts) // len(rows)
        for i, (text, ok) in enumerate(zip(rollout.texts, self._correct)):
            self.buffers.add(rows[i // g], text, ok)


def train(cfg: SatoriRecipe, command: Sequence[str] = ()) -> dict:
    world = world_size()
    cfg.check(world)
    out_dir = Path(cfg.output_dir)
    train_rows, eval_rows = math_task.problems_for_run(cfg.data, cfg.seed, out_dir)
    if "format" in cfg.stages:
        sft_rows = coat_sft_rows(train_rows, cfg.seed, cfg.format.mix) if cfg.format.demos == "coat" \
            else cot_sft_rows(train_rows)
    first = cfg.stages[0]
    accelerator = make_accelerator(cfg.format.runner if first == "format" else cfg.distill.runner
                                   if first == "distill" else rl_runner_config(cfg.rl))
    loaded = load_model(cfg.model)
    model, tok = loaded.model, loaded.tokenizer
    e = cfg.eval

    def held_out(m, acc):  # the task's evaluation during and after training
        metrics, _ = evaluate_math(acc.unwrap_model(m), tok, eval_rows, e.max_new_tokens, e.batch_size, e.restarts,
                                   cfg.seed, acc)
        return metrics

    def sft(m, rows, max_length, optim, runner, stage):
        examples = tokenize_rows(rows, tok, max_length, packing=False)
        task = sft_task(examples, tok, held_out if eval_rows else None, name=f"satori-{stage}")
        return fit(m, tok, task, optim, runner, cfg.logging, out_dir / stage, cfg.seed, accelerator,
                   config_yaml=to_yaml(cfg), command=command, settings=f"{stage}.runner")

    def run_format(m):
        return sft(m, sft_rows, cfg.format.max_length, cfg.format.optim, cfg.format.runner, "format")

    def run_rl(m, stage="rl"):
        parts = SatoriRL(cfg, tok, accelerator.device)
        task = RLTask(train_rows, parts.prompt, reward=parts.reward, evaluate=held_out if eval_rows else None,
                      select=parts.select, observe=parts.observe, state_dict=parts.buffers.state_dict,
                      load_state_dict=parts.buffers.load_state_dict, name=f"satori-{stage}")
        # rl2 resumes only from its own checkpoints: a rl.resume folder belongs to round 1.
        rl = cfg.rl if stage == "rl" or cfg.rl.resume == "never" else replace(cfg.rl, resume="auto")
        return train_rl(m, tok, task, rl, cfg.logging, out_dir / stage, cfg.seed, accelerator,
                        config_yaml=to_yaml(cfg), command=command)

    def run_distill(m):
        d = cfg.distill
        policy = accelerator.unwrap_model(m)
        accelerator.free_memory()
        problems = train_rows[: d.prompts] if d.prompts else train_rows
        settings = {"teacher": _teacher(cfg, out_dir), "problems": len(problems), "seed": cfg.seed,
                    **{k: getattr(d, k) for k in ("samples", "temperature", "top_p", "max_new_tokens")}}
        rows = load_or_sample(out_dir / "distill", settings, lambda: sample_solutions(
            policy, tok, problems, d, cfg.seed, accelerator, cfg.logging.progress))
        accelerator.print(f"distill: {len(rows)} correct solutions to {len(problems)} problems; "
                          f"fine-tuning {d.base or cfg.model.name} on them")
        copy_weights(policy, load_model(replace(cfg.model, name=d.base or cfg.model.name)).model)  # back to the base
        return sft(policy, rows, d.max_length, d.optim, d.runner, "distill")

    runs = {"format": (run_format, cfg.format.runner.resume), "distill": (run_distill, cfg.distill.runner.resume)}
    plan = []
    for i, s in enumerate(cfg.stages):
        if s in runs:
            plan.append(Stage(s, out_dir / s, runs[s][0], runs[s][1]))
        else:  # an RL stage saves checkpoints; its model/ only when a distill stage learns from it
            teaches = "distill" in cfg.stages[i + 1 :]
            plan.append(Stage(s, out_dir / s, lambda m, s=s: run_rl(m, s), cfg.rl.resume, saves_model=teaches))
    model, metrics = run_stages(accelerator, model, tok, plan)
    save_final(accelerator, model, tok, out_dir)
    return metrics


def _teacher(cfg: SatoriRecipe, out_dir: Path) -> str:
    """What the distilled solutions came from: round 1's RL model (its weights' file time), or model.name."""
    policy = out_dir / "rl" / "model" / "model.safetensors"
    return f"{policy}@{policy.stat().st_mtime_ns}" if "rl" in cfg.stages and policy.is_file() else cfg.model.name


def evaluate(cfg: SatoriRecipe, checkpoint: str, data: str, out: Optional[str] = None) -> dict:
    """Score ``checkpoint`` on math rows; writes ``eval.json`` next to it (or to ``out``)."""
    cfg.model.name = checkpoint
    cfg.model.lora.enabled = False
    cfg.check()
    rows = math_task.load_math(data)
    loaded = load_model(cfg.model, train=False)
    loaded.model.eval()
    e = cfg.eval
    metrics, samples = evaluate_math(loaded.model, loaded.tokenizer, rows[: e.limit] if e.limit else rows,
                                     e.max_new_tokens, e.batch_size, e.restarts, cfg.seed)
    write_eval({"data": str(data), "checkpoint": checkpoint, **metrics, "samples": samples}, out, checkpoint,
               cfg.output_dir)
    return metrics


def dry_run(cfg: SatoriRecipe, target) -> dict:
    """``train satori --dry-run``: problems, the policy (and critic) at real size, memory per stage, and
    the format-tuning loss and the critic's values on a two-layer model of the real widths."""
    from mmthink.data.chat import collate_right
    from mmthink.methods.satori.config import META_TOKENS
    from mmthink.models.paper import count_parameters
    from mmthink.rl.critic import ValueModel, completion_values
    from mmthink.runner import dryrun
    from mmthink.runner.sft import tokenize_rows

    cfg.check(target.gpus)
    d = cfg.data
    rows = math_task.load_math(d.train_file, d.limit) if d.train_file else \
        math_task.generate_split(min(d.n_train, 64), 0, cfg.seed, tuple(d.kinds), tuple(d.levels))[0]
    pm, meta, new_ids = dryrun.lm_surgery(cfg.model)
    total, trainable = count_parameters(meta)
    report = dryrun.Report(f"train satori with {cfg.model.name} (config: {pm.source})")
    report.fact("rows", f"{len(rows)} from {d.train_file}" if d.train_file else f"{len(rows)} generated (as the run would)")
    report.fact("parameters", f"{total:,} ({trainable:,} trainable)")
    report.fact("accelerate estimate-memory", dryrun.accelerate_figure(meta))
    report.fact("meta tokens", f"ids {list(new_ids)}; {meta.get_input_embeddings().num_embeddings:,} embedding rows")
    tok = dryrun.test_tokenizer(pm)
    tokens = max(len(tok(chat_prompt(tok, r))["input_ids"]) for r in rows[:64]) + cfg.rl.rollout.max_new_tokens
    if "format" in cfg.stages:
        f = cfg.format
        report.estimates["format tuning"] = dryrun.training_estimate(meta, cfg.model, f.runner.mixed_precision,
                                                                     f.runner.micro_batch_size, f.max_length, target)
    if "rl" in cfg.stages or "rl2" in cfg.stages:
        critic = ValueModel.from_policy(meta) if cfg.rl.advantage.estimator == "gae" else None
        if critic is not None:
            report.fact("critic", f"{count_parameters(critic)[0]:,} parameters (the policy's body + a value head)")
        est = dryrun.rl_estimate(meta, cfg.model, cfg.rl, tokens, target, critic)
        report.estimates["RL (PPO) step" if critic is not None else "RL step"] = est
    if "distill" in cfg.stages:
        d = cfg.distill
        prompt_tokens = tokens - cfg.rl.rollout.max_new_tokens
        report.estimates["distill: sampling"] = dryrun.inference_estimate(
            meta, cfg.model, d.batch_size, prompt_tokens, target, d.max_new_tokens)
        report.estimates["distill: fine-tuning the base"] = dryrun.training_estimate(
            meta, cfg.model, d.runner.mixed_precision, d.runner.micro_batch_size, d.max_length, target)

    def shapes():
        import torch

        model = dryrun.lm_shape_model(pm, cfg.model, tok, META_TOKENS)
        demos = coat_sft_rows(rows[:2], cfg.seed, cfg.format.mix) if cfg.format.demos == "coat" else cot_sft_rows(rows[:2])
        loss = dryrun.chat_loss_check(model, tok, demos, cfg.format.max_length)
        batch = collate_right(tokenize_rows(demos, tok, cfg.format.max_length, packing=False), tok.pad_token_id)
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        # Under the RL stage's own precision: a bf16 body feeds the fp32 value head only through autocast.
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=cfg.rl.mixed_precision == "bf16"):
            values = completion_values(ValueModel.from_policy(model), batch["input_ids"], batch["attention_mask"],
                                       positions, 4)
        report.fact("shape check", f"2-layer model of the real widths: COAT loss {loss:.3f}, critic values {tuple(values.shape)}")

    dryrun.shape_check("format tuning or the critic", shapes)
    return dryrun.finish(report, target)
