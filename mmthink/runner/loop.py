"""The training loop every method runs on: ``fit(model, task, ...)``.

A method supplies a ``Task``: its examples, a collate function, and a loss that returns a *sum*
over loss items (e.g. target tokens) with the item count. The runner divides by the number of items
in the whole optimiser step — across gradient accumulation and processes — so one process with a
global batch B and N processes with B/N each compute the same gradient, and the loss does not depend
on how a step is cut into micro-batches.

Data order is a seeded permutation per epoch over global micro-batches that accelerate splits
across processes (``split_batches``); the position is part of every checkpoint, so a resumed run
sees the same batches, in the same order, with the same RNG, as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from mmthink.errors import UserError
from mmthink.ops.lm import target_counts
from mmthink.runner import world_size
from mmthink.runner.config import LoggingConfig, OptimConfig, RunnerConfig
from mmthink.runner.schedule import make_scheduler
from mmthink.runner.session import RunSession


@dataclass
class LossOutput:
    loss_sum: Any  # scalar tensor: the loss summed over this micro-batch's items
    num_items: Any  # scalar tensor or int: how many items the sum runs over
    metrics: dict = field(default_factory=dict)  # extra sums to log, divided by the step's items


@dataclass
class Task:
    """What a method hands the runner."""

    train_data: Sequence[Any]
    collate: Callable[[list], dict]
    loss: Callable[[Any, dict], LossOutput]
    evaluate: Optional[Callable[[Any, Any], dict]] = None  # (model, accelerator) -> metrics
    name: str = "train"


class EpochBatchSampler:
    """Global micro-batches of indices: a fresh seeded permutation each epoch, resumable mid-epoch."""

    def __init__(self, n: int, batch_size: int, batches_per_epoch: int, seed: int):
        self.n, self.batch_size, self.batches_per_epoch, self.seed = n, batch_size, batches_per_epoch, seed
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self):
        import torch

        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        for b in range(self.start, self.batches_per_epoch):
            yield order[b * self.batch_size : (b + 1) * self.batch_size]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start


def make_accelerator(runner: RunnerConfig):
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    # split_batches: the sampler yields global micro-batches; each process gets its slice.
    accelerator = Accelerator(
        mixed_precision=runner.mixed_precision,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    if accelerator.num_processes != world_size():
        # Otherwise every process trains alone and they all write the same run folder.
        raise UserError(
            f"the launcher started {world_size()} processes but accelerate joined {accelerator.num_processes}; "
            "on a machine without GPUs launch with ACCELERATE_USE_CPU=true (gloo)"
        )
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:
        # DeepSpeed steps its optimiser inside backward and scales by its own accumulation count;
        # the runner's token-exact accumulation is not wired through it, so one micro-batch per step.
        if runner.grad_accum(accelerator.num_processes) != 1:
            raise UserError(
                "under DeepSpeed set runner.batch_size = runner.micro_batch_size x processes "
                f"(= {runner.micro_batch_size * accelerator.num_processes}); gradient accumulation is not supported there"
            )
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = runner.micro_batch_size
    return accelerator


def make_optimizer(model, optim: OptimConfig):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserError("the model has no trainable parameters")
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # norms and biases are not decayed
    groups = [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)


def make_lr_scheduler(optimizer, optim: OptimConfig, max_steps: int):
    warmup = optim.warmup_steps or int(round(optim.warmup_ratio * max_steps))
    return make_scheduler(optimizer, optim.scheduler, warmup, max_steps, optim.min_lr_ratio)


def fit(
    model,
    tokenizer,
    task: Task,
    optim: OptimConfig,
    runner: RunnerConfig,
    log: LoggingConfig,
    output_dir: Path,
    seed: int,
    accelerator=None,
    config_yaml: str = "",
    command: Sequence[str] = (),
    settings: str = "runner",
) -> dict:
    """Train ``model`` on ``task``; checkpoints and metrics go under ``output_dir``. Returns last metrics.

    Everything that can be refused is checked before the first file of the run is written; then
    ``resolved_config.yaml`` (``config_yaml``) and ``run_info.json`` are written.
    """
    import torch
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader

    accelerator = accelerator or make_accelerator(runner)
    world = accelerator.num_processes
    runner.check(world)
    accum = runner.grad_accum(world)
    micro_global = runner.micro_batch_size * world
    batches_per_epoch = (len(task.train_data) // micro_global // accum) * accum
    if batches_per_epoch == 0:
        raise UserError(
            f"{len(task.train_data)} training examples are fewer than one optimiser step (runner.batch_size={runner.batch_size})"
        )
    steps_per_epoch = batches_per_epoch // accum
    max_steps = runner.epochs * steps_per_epoch if runner.epochs else runner.max_steps

    set_seed(seed)
    sampler = EpochBatchSampler(len(task.train_data), micro_global, batches_per_epoch, seed)
    # Each new DataLoader iterator draws a seed from its generator; a private one keeps that draw out
    # of the global stream (dropout), which a resumed run would otherwise see shifted.
    loader = DataLoader(
        task.train_data,
        batch_sampler=sampler,
        collate_fn=task.collate,
        num_workers=runner.num_workers,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = make_optimizer(model, optim)
    scheduler = make_lr_scheduler(optimizer, optim, max_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    launch = {"world_size": world, "distributed_type": str(accelerator.distributed_type), "grad_accum": accum}
    run = RunSession(accelerator, model, output_dir, runner.resume, max_steps, log, task.name, config_yaml, command,
                     launch, allow_changes=runner.resume_allow_changes, settings=settings)
    state = run.state

    def windows():
        """Lists of ``accum`` micro-batches, epoch after epoch, from the saved position on."""
        while True:
            sampler.set_position(state.epoch, state.batch_in_epoch)
            window = []
            for batch in loader:
                window.append(batch)
                if len(window) == accum:
                    yield window
                    window = []
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0

    model.train()
    last: dict = {}
    t_last, items_last, step_last = time.monotonic(), state.items_seen, state.step
    with run:
        for window in windows() if state.step < max_steps else ():
            counts = [torch.as_tensor(_count(b), device=accelerator.device, dtype=torch.float64) for b in window]
            total = accelerator.reduce(torch.stack(counts).sum(), reduction="sum")
            if total.item() == 0:
                raise UserError("an optimiser step has no loss items (every target is masked); check the data")
            loss_sum = torch.zeros((), device=accelerator.device, dtype=torch.float64)
            extra: dict = {}
            for i, batch in enumerate(window):
                sync = i == len(window) - 1
                with nullcontext() if sync else accelerator.no_sync(model):
                    out = task.loss(model, batch)
                    # DDP averages gradients over processes, hence the factor ``world``.
                    accelerator.backward(out.loss_sum * (world / total.to(out.loss_sum.dtype)))
                loss_sum += out.loss_sum.detach().double()
                for k, v in out.metrics.items():
                    extra[k] = extra.get(k, 0.0) + torch.as_tensor(v, device=accelerator.device, dtype=torch.float64)
            if not torch.isfinite(loss_sum):
                # Stop before the step: a non-finite loss would write NaN weights and a model that looks trained.
                raise UserError(f"the loss became non-finite at step {state.step + 1} ({loss_sum.item()}); "
                                "no model was saved: lower optim.lr or check the data")
            grad_norm = None
            if optim.max_grad_norm > 0:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), optim.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            state.step += 1
            state.batch_in_epoch += accum
            state.examples_seen += micro_global * accum
            state.items_seen += int(total.item())
            if state.batch_in_epoch >= batches_per_epoch:
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0

            if state.step % runner.log_every == 0 or state.step == max_steps:
                now = time.monotonic()
                last = {
                    "loss": (accelerator.reduce(loss_sum, reduction="sum") / total).item(),
                    "lr": scheduler.get_last_lr()[0],
                    "epoch": state.step / steps_per_epoch,
                    "items_per_s": (state.items_seen - items_last) / max(now - t_last, 1e-9),
                    "s_per_step": (now - t_last) / max(state.step - step_last, 1),
                    **{k: (accelerator.reduce(v, reduction="sum") / total).item() for k, v in extra.items()},
                }
                if grad_norm is not None:
                    last["grad_norm"] = float(grad_norm)
                t_last, items_last, step_last = now, state.items_seen, state.step
                run.log(last)
            run.progress.update(state.step, f"loss {last.get('loss', float('nan')):.4f}")

            paused = False
            if task.evaluate and runner.eval_every and state.step % runner.eval_every == 0 and state.step < max_steps:
                run.evaluate(task, model)
                paused = True
            if runner.save_every and state.step % runner.save_every == 0:
                run.save(model, tokenizer, runner.keep_last)
                paused = True
            if paused:  # rates measure training, not evaluation or checkpoint writing
                t_last, items_last, step_last = time.monotonic(), state.items_seen, state.step
            if state.step >= max_steps:
                break
    return run.finish(task, model, last)


def _count(batch) -> int:
    import torch

    if "num_items" in batch:
        return int(batch["num_items"])
    labels = batch["labels"]
    return int(target_counts(labels).sum()) if isinstance(labels, torch.Tensor) else len(labels)


def perplexity(loss: float) -> float:
    # ppl = exp(mean token NLL); capped so that a diverged run logs inf instead of raising.
    return math.exp(loss) if loss < 700 else float("inf")
