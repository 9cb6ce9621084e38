"""The RL loop every RL method runs on: rollout → rewards → advantages → clipped policy updates.

A method supplies an ``RLTask``: its prompt rows, how a row becomes a prompt, and how completions
are scored. Everything else — sampling, GRPO / REINFORCE / PPO-with-GAE advantages, the clipped
surrogate with KL and entropy terms, the critic, logging, checkpoints and exact resume — is here.

One step, on each process (its share of ``rl.prompts_per_step`` prompts, whole groups):
1. ``group_size`` completions per prompt (KV-cached sampling, stop strings);
2. rewards (weighted sum of registered functions, each logged);
3. advantages; for PPO the critic's values (no grad) and GAE, whitened;
4. old log-probs (only when a rollout batch is used for more than one optimiser step — otherwise the
   ratio is exactly 1 and old = current, detached) and reference log-probs (only when β > 0), both
   micro-batched so long rollouts do not hold one huge logits tensor;
5. ``inner_epochs`` passes of ``mini_batches`` optimiser steps each; every loss is a (sum, count)
   pair normalised by the count of the whole mini-batch across micro-batches and processes.

Prompts for step s come from a seeded permutation and sampling uses a generator seeded by
(seed, step, rank), so a resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from mmthink.errors import UserError
from mmthink.rl import advantages as adv
from mmthink.rl import losses
from mmthink.rl.config import RLConfig
from mmthink.rl.critic import ValueModel, completion_values
from mmthink.rl.rewards import check_rewards, score
from mmthink.rl.rollout import Rollout, completion_logits, generate_rollouts, micro_batches, sequence_inputs
from mmthink.runner.config import LoggingConfig, RunnerConfig
from mmthink.runner.loop import make_accelerator, make_lr_scheduler, make_optimizer
from mmthink.runner.session import RunSession


@dataclass
class RLTask:
    rows: Sequence[dict]  # prompt rows (the dataset)
    prompt: Callable[[dict], str]  # row -> chat-templated prompt text
    # (prompt texts, completions, rows, group_size) -> (reward per completion, metrics); default:
    # the recipe's registered reward functions, weighted.
    reward: Optional[Callable[[list, list, list, int], tuple[list, dict]]] = None
    evaluate: Optional[Callable[[Any, Any], dict]] = None  # (model, accelerator) -> metrics
    # Replace the step's prompt rows (e.g. Satori mixes restart states in): (step, rows, rng) -> rows.
    select: Optional[Callable[[int, list, torch.Generator], list]] = None
    # Called after scoring, on each process: (step, rows, rollout, rewards) — e.g. to fill buffers.
    observe: Optional[Callable[[int, list, Rollout, list], None]] = None
    # Custom rollout (e.g. Mirage's images + latent decoding): (model, rows, prompts, cfg, generator) -> Rollout.
    rollout: Optional[Callable] = None
    # Logits / T predicting each completion token: (model, rollout, rows_slice, T) -> (n, T, V).
    logits: Callable = completion_logits
    # Extra state saved with each checkpoint and restored on resume (e.g. replay buffers).
    state_dict: Optional[Callable[[], dict]] = None
    load_state_dict: Optional[Callable[[dict], None]] = None
    name: str = "rl"


def step_prompt_indices(n_rows: int, per_step: int, step: int, seed: int) -> list[int]:
    """Prompt rows of RL step ``step`` (0-based): consecutive slices of a per-epoch seeded permutation."""
    usable = max(n_rows // per_step, 1) * per_step
    start = step * per_step
    epoch, offset = divmod(start, usable)
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n_rows, generator=g).tolist()
    order = (order * ((usable + n_rows - 1) // n_rows))[:usable]  # fewer rows than a step: repeat
    return order[offset : offset + per_step]


def rl_runner_config(cfg: RLConfig) -> RunnerConfig:
    """The runner settings ``make_accelerator`` needs for an RL run."""
    # make_accelerator reads precision and (for DeepSpeed) the micro-batch size from a RunnerConfig.
    return RunnerConfig(max_steps=cfg.steps, batch_size=cfg.micro_batch_size, micro_batch_size=cfg.micro_batch_size,
                        mixed_precision=cfg.mixed_precision)


def _logprobs_no_grad(model, rollout, rows_all, micro, temperature, logits_fn) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for rows in micro_batches(rows_all, micro):
            logits = logits_fn(model, rollout, rows, temperature)
            out.append(losses.token_logprobs(logits, rollout.completion_ids[rows]))
    return torch.cat(out)


def _values_no_grad(critic, rollout, micro) -> torch.Tensor:
    out = []
    t = rollout.completion_ids.shape[1]
    with torch.no_grad():
        for rows in micro_batches(rollout.completion_ids.shape[0], micro):
            ids, att, pos = sequence_inputs(rollout, rows)
            out.append(completion_values(critic, ids, att, pos, t))
    return torch.cat(out) * rollout.mask


def compute_advantages(cfg: RLConfig, rewards: torch.Tensor, mask: torch.Tensor, values=None):
    """(advantages (N, T), returns (N, T) or None) for the recipe's estimator."""
    a, g = cfg.advantage, cfg.rollout.group_size
    if a.estimator == "gae":
        token_rewards = adv.last_token_rewards(rewards, mask)
        advantages, returns = adv.gae(token_rewards, values, mask, a.gamma, a.lam)
        if a.whiten:
            advantages = adv.whiten(advantages, mask)
        return advantages * mask, returns
    if a.estimator == "grpo":
        per_seq = adv.group_normalized(rewards, g, a.std, a.eps, a.unbiased_std)
    else:
        per_seq = adv.reinforce_baseline(rewards, g, a.baseline)
    return per_seq[:, None] * mask, None


class Learner:
    """One policy's learning side: the prepared model, its optimiser and LR schedule, the frozen reference
    (when β > 0) and, for PPO, the critic; ``learn`` runs steps 4–5 on a scored rollout.

    ``train_rl`` drives one; a method that co-trains two policies (Tango) holds one each on the same
    accelerator, so ``accelerator.save_state`` keeps both optimisers and schedules.
    """

    def __init__(self, model, cfg, accelerator, total_updates: int, critic_optim=None):
        self.cfg, self.accelerator = cfg, accelerator
        unwrapped = getattr(model, "module", model)
        self.ref_model = None
        if cfg.loss.kl_coef > 0 and not hasattr(unwrapped, "disable_adapter"):
            import copy

            self.ref_model = copy.deepcopy(unwrapped).eval().requires_grad_(False)
        self.critic = self.c_opt = self.c_sched = None
        optimizer = make_optimizer(model, cfg.optim)
        scheduler = make_lr_scheduler(optimizer, cfg.optim, total_updates)
        if critic_optim is not None:
            critic = ValueModel.from_policy(unwrapped)
            c_opt = make_optimizer(critic, critic_optim)
            c_sched = make_lr_scheduler(c_opt, critic_optim, total_updates)
            (self.model, self.optimizer, self.scheduler, self.critic, self.c_opt,
             self.c_sched) = accelerator.prepare(model, optimizer, scheduler, critic, c_opt, c_sched)
            self.critic_optim = critic_optim
        else:
            self.model, self.optimizer, self.scheduler = accelerator.prepare(model, optimizer, scheduler)
        if self.ref_model is not None:
            self.ref_model.to(accelerator.device)
        self.policy = accelerator.unwrap_model(self.model)

    @property
    def updates_per_step(self) -> int:
        return self.cfg.inner_epochs * self.cfg.mini_batches

    def values(self, rollout) -> Optional[torch.Tensor]:
        """The critic's values of the rollout (no grad), or None without a critic."""
        if self.critic is None:
            return None
        return _values_no_grad(self.accelerator.unwrap_model(self.critic), rollout, self.cfg.micro_batch_size)

    def learn(self, rollout, advantages, step: int, seed: int, logits_fn: Callable = completion_logits,
              weights=None, returns=None, old_values=None) -> dict:
        """Old and reference log-probs, then ``inner_epochs`` passes of ``mini_batches`` optimiser steps.

        ``advantages`` (N, T) may vary over tokens (process rewards); ``weights`` (N,) scale each sequence's
        clipped policy loss (class-balancing); both as computed by the caller."""
        cfg = self.cfg
        n = rollout.mask.shape[0]
        temp = cfg.rollout.temperature
        old_logp = _logprobs_no_grad(self.policy, rollout, n, cfg.micro_batch_size, temp, logits_fn) \
            if self.updates_per_step > 1 else None
        ref_logp = None
        if cfg.loss.kl_coef > 0:
            # The reference is the frozen copy, or the LoRA policy with its adapter switched off.
            with self.policy.disable_adapter() if self.ref_model is None else nullcontext():
                ref_logp = _logprobs_no_grad(self.ref_model or self.policy, rollout, n, cfg.micro_batch_size, temp,
                                             logits_fn)
        sums: dict = {}
        perm_gen = torch.Generator().manual_seed(seed * 7919 + step)
        for _ in range(cfg.inner_epochs):
            order = torch.randperm(n, generator=perm_gen) if cfg.mini_batches > 1 else torch.arange(n)
            for chunk in order.chunk(cfg.mini_batches):
                chunk = chunk.to(rollout.mask.device)
                stats = _update(self, rollout, chunk, advantages, returns, old_values, old_logp, ref_logp, logits_fn,
                                weights)
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v / self.updates_per_step
        return sums

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]


def train_rl(
    model,
    tokenizer,
    task: RLTask,
    cfg: RLConfig,
    log: LoggingConfig,
    output_dir: Path,
    seed: int,
    accelerator=None,
    config_yaml: str = "",
    command: Sequence[str] = (),
    settings: str = "rl",
) -> dict:
    """Run ``cfg.steps`` RL steps on ``model``; checkpoints and metrics under ``output_dir``."""
    from accelerate.utils import set_seed

    accelerator = accelerator or make_accelerator(rl_runner_config(cfg))
    world, rank = accelerator.num_processes, accelerator.process_index
    cfg.check(world)
    if task.reward is None:
        check_rewards(cfg.rewards)
    if len(task.rows) == 0:
        raise UserError("no prompt rows to train on")
    set_seed(seed)
    g = cfg.rollout.group_size
    per_process = cfg.prompts_per_step // world
    updates_per_step = cfg.inner_epochs * cfg.mini_batches
    use_critic = cfg.advantage.estimator == "gae"

    learner = Learner(model, cfg, accelerator, cfg.steps * updates_per_step,
                      cfg.critic_optim if use_critic else None)
    model, scheduler, critic, policy = learner.model, learner.scheduler, learner.critic, learner.policy

    run = RunSession(accelerator, model, output_dir, cfg.resume, cfg.steps, log, task.name, config_yaml, command,
                     {"world_size": world, "algorithm": cfg.advantage.estimator},
                     load_extra=lambda folder: _load_extra(folder, critic, task, accelerator),
                     allow_changes=cfg.resume_allow_changes, settings=settings)
    state = run.state
    samples_path = output_dir / "samples.jsonl"
    last: dict = {}
    with run:
        while state.step < cfg.steps:
            t0 = time.monotonic()
            idx = step_prompt_indices(len(task.rows), cfg.prompts_per_step, state.step, seed)
            rows = [task.rows[i] for i in idx[rank * per_process : (rank + 1) * per_process]]
            gen = torch.Generator(device=accelerator.device).manual_seed(seed * 1_000_003 + state.step * 1009 + rank)
            if task.select is not None:
                rows = task.select(state.step, rows, gen)
            prompts = [task.prompt(r) for r in rows]

            # 1. rollouts
            if task.rollout is not None:
                rollout = task.rollout(policy, rows, prompts, cfg, gen)
            else:
                r = cfg.rollout
                rollout = generate_rollouts(policy, tokenizer, prompts, g, r.max_new_tokens, r.temperature, r.top_p,
                                            r.stop, r.batch_size, generator=gen)
            t_rollout = time.monotonic() - t0

            # 2. rewards
            if task.reward is not None:
                totals, metrics = task.reward(prompts, rollout.texts, rows, g)
            else:
                totals, metrics = score(cfg.rewards, prompts, rollout.texts, rows, g)
            rewards = torch.tensor(totals, dtype=torch.float32, device=accelerator.device)
            if cfg.reward_clip is not None:
                rewards = rewards.clamp(-cfg.reward_clip, cfg.reward_clip)
            if task.observe is not None:
                task.observe(state.step, rows, rollout, rewards.tolist())

            # 3.–5. advantages; old and reference log-probs; updates
            old_values = learner.values(rollout)
            advantages, returns = compute_advantages(cfg, rewards, rollout.mask, old_values)
            sums = learner.learn(rollout, advantages, state.step, seed, task.logits, returns=returns,
                                 old_values=old_values)
            state.step += 1
            if not all(math.isfinite(v) for v in sums.values()):
                raise UserError(f"the RL losses became non-finite at step {state.step} "
                                f"({', '.join(f'{k}={v:.4g}' for k, v in sums.items())}); no model was saved")

            lengths = rollout.lengths.float()
            metrics.update({f"{k}": v for k, v in sums.items()})
            metrics.update({
                "completion_len/mean": lengths.mean().item(), "completion_len/max": lengths.max().item(),
                "lr": scheduler.get_last_lr()[0], "rollout_s": t_rollout, "step_s": time.monotonic() - t0,
            })
            if rollout.latent_steps is not None:
                metrics["latent_steps/mean"] = rollout.latent_steps.float().mean().item()
            last = reduce_metrics(accelerator, metrics)
            run.log(last)
            if accelerator.is_main_process:
                _write_samples(samples_path, state.step, prompts, rollout.texts, totals, g, cfg.log_samples)
            run.progress.update(state.step, f"reward {last.get('reward/total/mean', float('nan')):.3f}")

            if task.evaluate and cfg.eval_every and state.step % cfg.eval_every == 0 and state.step < cfg.steps:
                run.evaluate(task, model)
            if cfg.save_every and state.step % cfg.save_every == 0:
                run.save(model, tokenizer, cfg.keep_last, extra=lambda folder: _save_extra(folder, critic, task, accelerator))
    return run.finish(task, model, last)


def _update(learner: Learner, rollout, chunk, advantages, returns, old_values, old_logp, ref_logp, logits_fn,
            weights=None) -> dict:
    """One optimiser step (policy, and critic for PPO) over the sequences ``chunk`` of the rollout."""
    cfg, accelerator, model = learner.cfg, learner.accelerator, learner.model
    world = accelerator.num_processes
    lc = cfg.loss
    micro = [chunk[i : i + cfg.micro_batch_size] for i in range(0, len(chunk), cfg.micro_batch_size)]
    # Denominators of the whole mini-batch first, so that accumulation over micro-batches is exact.
    zero = torch.zeros_like(rollout.mask)
    count = sum(losses.aggregate(zero[m], rollout.mask[m], lc.aggregation, cfg.norm_length)[1] for m in micro)
    count = accelerator.reduce(torch.as_tensor(count, dtype=torch.float32, device=accelerator.device), "sum")
    tokens = accelerator.reduce(rollout.mask[chunk].sum().float(), "sum")
    stats = {"loss/policy": 0.0, "kl": 0.0, "clip_frac": 0.0, "entropy": 0.0}
    if count.item() == 0:
        return stats
    for i, m in enumerate(micro):
        mask = rollout.mask[m]
        with nullcontext() if i == len(micro) - 1 else accelerator.no_sync(model):
            logits = logits_fn(model, rollout, m, cfg.rollout.temperature)
            logp = losses.token_logprobs(logits, rollout.completion_ids[m])
            old = old_logp[m] if old_logp is not None else logp.detach()
            tok_loss, clipped = losses.clipped_surrogate(logp, old, advantages[m], lc.eps_low, lc.eps_high, lc.dual_clip)
            if weights is not None:
                # w_i L_i: both branches of the clipped surrogate scaled (w > 0 leaves the min unchanged)
                tok_loss = tok_loss * weights[m].to(tok_loss.dtype)[:, None]
            entropy = losses.entropy_from_logits(logits.detach() if lc.entropy_coef == 0 else logits)
            if lc.entropy_coef:
                tok_loss = tok_loss - lc.entropy_coef * entropy
            if ref_logp is not None:
                kl = losses.kl_penalty(logp, ref_logp[m], lc.kl_estimator)
                tok_loss = tok_loss + lc.kl_coef * kl
                stats["kl"] += float(((kl.detach() * mask).sum() / tokens).item()) * world
            total, _ = losses.aggregate(tok_loss, mask, lc.aggregation, cfg.norm_length)
            accelerator.backward(total * (world / count))
        stats["loss/policy"] += float((total.detach() / count).item()) * world
        stats["clip_frac"] += float(((clipped.float() * mask).sum() / tokens).item()) * world
        stats["entropy"] += float(((entropy.detach() * mask).sum() / tokens).item()) * world
    if cfg.optim.max_grad_norm > 0:
        stats["grad_norm"] = float(accelerator.clip_grad_norm_(model.parameters(), cfg.optim.max_grad_norm))
    learner.optimizer.step()
    learner.scheduler.step()
    learner.optimizer.zero_grad(set_to_none=True)
    if learner.critic is not None:
        stats.update(_update_critic(learner, rollout, micro, returns, old_values, tokens))
    return stats


def _update_critic(learner: Learner, rollout, micro, returns, old_values, tokens) -> dict:
    accelerator, critic, cfg = learner.accelerator, learner.critic, learner.cfg
    world = accelerator.num_processes
    t = rollout.completion_ids.shape[1]
    loss_sum = 0.0
    for i, m in enumerate(micro):
        with nullcontext() if i == len(micro) - 1 else accelerator.no_sync(critic):
            ids, att, pos = sequence_inputs(rollout, m)
            values = completion_values(critic, ids, att, pos, t)
            per_tok = losses.value_loss(values, old_values[m], returns[m], cfg.loss.value_clip)
            total = (per_tok * rollout.mask[m]).sum()
            accelerator.backward(total * (world / tokens))
        loss_sum += float((total.detach() / tokens).item()) * world
    if learner.critic_optim.max_grad_norm > 0:
        accelerator.clip_grad_norm_(critic.parameters(), learner.critic_optim.max_grad_norm)
    learner.c_opt.step()
    learner.c_sched.step()
    learner.c_opt.zero_grad(set_to_none=True)
    return {"loss/value": loss_sum}


def reduce_metrics(accelerator, metrics: dict) -> dict:
    """Mean of each scalar metric over processes."""
    keys = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
    if accelerator.num_processes == 1 or not keys:
        return {k: float(metrics[k]) for k in keys}
    t = torch.tensor([float(metrics[k]) for k in keys], device=accelerator.device)
    t = accelerator.reduce(t, "mean")
    return dict(zip(keys, t.tolist()))


def _write_samples(path: Path, step: int, prompts, texts, rewards, group_size: int, n: int) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for i in range(min(n, len(texts))):
            f.write(json.dumps({"step": step, "prompt": prompts[i // group_size], "completion": texts[i],
                                "reward": rewards[i]}) + "\n")


def _save_extra(folder: Path, critic, task, accelerator) -> None:
    """Critic weights and the task's own state (e.g. RAE buffers) beside the policy checkpoint."""
    if critic is not None:
        from safetensors.torch import save_file

        sd = {k: v.detach().cpu().contiguous() for k, v in accelerator.unwrap_model(critic).state_dict().items()}
        save_file(sd, str(folder / "critic.safetensors"))
    if task.state_dict is not None:
        (folder / "task_state.json").write_text(json.dumps(task.state_dict()))


def _load_extra(folder: Path, critic, task, accelerator) -> None:
    if critic is not None:
        from safetensors.torch import load_file

        accelerator.unwrap_model(critic).load_state_dict(load_file(str(folder / "critic.safetensors")))
    if task.load_state_dict is not None and (folder / "task_state.json").is_file():
        task.load_state_dict(json.loads((folder / "task_state.json").read_text()))
