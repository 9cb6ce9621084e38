"""Wall time of one RL step (rollout + update) of mmthink's engine against TRL's ``GRPOTrainer``.

Both sides run in ONE process, one after the other, on the same machine and the same torch thread
count, with the same setup:

- the same model (two identical copies: the tiny presets are built from a seeded init, a folder or
  ``smollm2-135m-instruct`` is loaded twice from disk), float32, no gradient checkpointing;
- the same P prompts per step (chat-templated ``say <i>`` rows), G completions per prompt, sampled
  at temperature 1, top-p 1, no top-k;
- every completion exactly L new tokens: a forward hook on the LM head sets the logits of the eos
  and pad ids to -1e4, so no row stops early; the mean completion length each side actually
  produced is printed. The hook acts in both samplers; TRL's loss forward projects with the head's
  weight directly (its chunked log-prob kernel), so there the hook does not run -- a ~1 ms op on a
  second or more, and the log-prob values, not the work done, differ;
- the same reward (fraction of 'a' characters; independent of length), GRPO group-normalised
  advantages, token-mean loss (TRL ``loss_type="dapo"``), clip 0.2, beta = 0 (no reference model),
  one inner iteration (TRL ``num_iterations=1``; neither side computes old log-probs then);
- the same optimiser: ``torch.optim.AdamW`` (TRL ``optim="adamw_torch"``), same lr, constant schedule,
  weight decay 0, grad-norm clip 1.0; P*G sequences in one micro-batch and one optimiser step per RL
  step (mmthink ``micro_batch_size=P*G``; TRL ``per_device_train_batch_size=P*G``,
  ``gradient_accumulation_steps=1``).

Step time is measured from the start of one step to the start of the next (everything the trainer
does per step: sampling, rewards, advantages, forward/backward, optimiser, its own logging). Each side
runs --rounds times in a fresh trainer, the order alternating (mmthink, TRL, TRL, mmthink, ...) so a
drifting machine load hits both alike; in each run the first --warmup steps are dropped, and the
median over all timed steps is reported. "generation" is the time inside the sampler (mmthink
``generate_rollouts``, TRL ``model.generate``); "rest" is step - generation. TRL's GRPOConfig turns
gradient checkpointing on by default; it is off here, as in mmthink. On a machine whose cores other
processes also use, pass --threads 1: multi-threaded ops stall whenever one of their threads is
descheduled, which scatters the times of both sides.

Install (torch must stay as it is; TRL is only needed for the comparison):
    pip install --no-deps -r benchmarks/requirements-bench.txt

Usage:
    python benchmarks/bench_rl_step.py [--model tiny-llama] [--prompts 4] [--group 8] [--length 64]
                                       [--steps 5] [--warmup 2] [--rounds 2] [--threads 0]
                                       [--only both|mmthink|trl] [--trl-first]
    e.g. the 135M model: --model smollm2-135m-instruct --steps 2 --warmup 1 --rounds 1 (~1 min a step)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REWARD_NAME = "bench_fraction_a"


def fraction_a(text: str) -> float:
    return text.count("a") / max(len(text), 1)


def load(model_name: str):
    from mmthink.models.config import ModelConfig
    from mmthink.models.loading import load_model

    loaded = load_model(ModelConfig(name=model_name))
    model, tok = loaded.model, loaded.tokenizer
    model.float().train()
    suppress_stop_tokens(model, tok)
    return model, tok


def suppress_stop_tokens(model, tok) -> list:
    """LM-head forward hook: eos and pad logits -> -1e4 (finite, so entropies stay finite)."""
    import torch

    gen_eos = model.generation_config.eos_token_id if model.generation_config is not None else None
    gen_eos = gen_eos if isinstance(gen_eos, list) else [gen_eos]
    ids = sorted({*gen_eos, tok.eos_token_id, tok.pad_token_id} - {None})
    banned = torch.tensor(ids, dtype=torch.long)

    def hook(module, inputs, output):
        return output.index_fill(-1, banned.to(output.device), -1e4)

    model.get_output_embeddings().register_forward_hook(hook)
    return ids


def prompt_rows(n: int = 64) -> list[dict]:
    return [{"q": f"say {i}"} for i in range(n)]


def intervals(begins: list[float], warmup: int, steps: int) -> list[float]:
    """Begin-to-begin durations of steps warmup .. warmup+steps-1 (needs warmup+steps+1 begins)."""
    return [begins[i + 1] - begins[i] for i in range(warmup, warmup + steps)]


def run_mmthink(args) -> dict:
    import torch

    import mmthink.rl.trainer as rl_trainer
    from mmthink.rl.config import RLConfig
    from mmthink.rl.rewards import REWARDS, RewardSpec, register_reward
    from mmthink.runner.config import LoggingConfig, OptimConfig

    model, tok = load(args.model)
    if REWARD_NAME not in REWARDS:
        register_reward(REWARD_NAME)(lambda prompt, completion, row: fraction_a(completion))

    total = args.warmup + args.steps + 1
    begins: list[float] = []
    gen_s: list[float] = []
    prompt_lens: list[float] = []

    def select(step, rows, gen):
        begins.append(time.perf_counter())
        return rows

    real_generate = rl_trainer.generate_rollouts

    def timed_generate(*a, **k):
        t0 = time.perf_counter()
        out = real_generate(*a, **k)
        gen_s.append(time.perf_counter() - t0)
        prompt_lens.append(out.prompt_mask.sum(-1).float().mean().item())
        return out

    cfg = RLConfig(steps=total, prompts_per_step=args.prompts, micro_batch_size=args.prompts * args.group,
                   rewards=[RewardSpec(REWARD_NAME, 1.0)],
                   optim=OptimConfig(lr=args.lr, scheduler="constant", weight_decay=0.0, max_grad_norm=1.0))
    cfg.rollout.group_size = args.group
    cfg.rollout.max_new_tokens = args.length
    cfg.rollout.temperature = 1.0
    cfg.rollout.top_p = 1.0
    cfg.rollout.batch_size = args.prompts * args.group
    cfg.advantage.estimator = "grpo"
    cfg.loss.kl_coef = 0.0
    cfg.loss.aggregation = "token-mean"
    cfg.inner_epochs = 1
    cfg.mini_batches = 1
    cfg.resume = "never"
    task = rl_trainer.RLTask(
        prompt_rows(),
        prompt=lambda r: tok.apply_chat_template([{"role": "user", "content": r["q"]}], tokenize=False,
                                                 add_generation_prompt=True),
        select=select,
        name="bench",
    )
    rl_trainer.generate_rollouts = timed_generate
    try:
        with tempfile.TemporaryDirectory() as out:
            rl_trainer.train_rl(model, tok, task, cfg, LoggingConfig(progress="none"), Path(out), seed=args.seed)
            begins.append(time.perf_counter())
            metrics = [json.loads(line) for line in open(Path(out) / "metrics.jsonl")]
    finally:
        rl_trainer.generate_rollouts = real_generate
    steps = intervals(begins, args.warmup, args.steps)
    window = slice(args.warmup, args.warmup + args.steps)
    return {
        "step": steps,
        "gen": gen_s[window],
        "completion_len": statistics.mean(m["completion_len/mean"] for m in metrics[window]),
        "prompt_len": statistics.mean(prompt_lens[window]),
        "reward": statistics.mean(m["reward/total/mean"] for m in metrics[window]),
        "threads": torch.get_num_threads(),
    }


def run_trl(args) -> dict:
    import torch
    import trl
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    model, tok = load(args.model)
    total = args.warmup + args.steps + 1
    begins: list[float] = []
    gen_s: list[float] = []
    prompt_lens: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            begins.append(time.perf_counter())

        def on_train_end(self, a, state, control, **kw):
            begins.append(time.perf_counter())

    completion_lens: list[float] = []
    rewards: list[float] = []

    def reward(prompts, completions, completion_ids, **kw):
        # conversational prompts: each completion is [{"role": "assistant", "content": text}]
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        completion_lens.append(statistics.mean(len(ids) for ids in completion_ids))
        values = [fraction_a(t) for t in texts]
        rewards.append(statistics.mean(values))
        return values

    # Same rows and same chat template as the mmthink side; TRL applies the template itself.
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": r["q"]}]} for r in prompt_rows()])
    targs = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench_trl_"),
        per_device_train_batch_size=args.prompts * args.group,
        num_generations=args.group,
        gradient_accumulation_steps=1,
        num_iterations=1,
        beta=0.0,
        max_completion_length=args.length,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        loss_type="dapo",  # token mean over the batch, as mmthink's token-mean
        scale_rewards="group",
        epsilon=0.2,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        optim="adamw_torch",
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_steps=total,
        logging_steps=10**6,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        use_vllm=False,
        bf16=False,
        fp16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        log_completions=False,
        seed=args.seed,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=targs, train_dataset=data, processing_class=tok,
                          callbacks=[StepClock()])
    trainer.remove_callback(PrinterCallback)  # no log dict printed at the end of train()
    real_generate = trainer.model.generate

    def timed_generate(*a, **k):
        t0 = time.perf_counter()
        out = real_generate(*a, **k)
        gen_s.append(time.perf_counter() - t0)
        prompt_lens.append(k["attention_mask"].sum(-1).float().mean().item())
        return out

    trainer.model.generate = timed_generate
    torch.set_num_threads(args.threads_used)  # the Trainer must not have changed it
    trainer.train()
    steps = intervals(begins, args.warmup, args.steps)
    window = slice(args.warmup, args.warmup + args.steps)
    return {
        "step": steps,
        "gen": gen_s[window],
        "completion_len": statistics.mean(completion_lens[window]),
        "prompt_len": statistics.mean(prompt_lens[window]),
        "reward": statistics.mean(rewards[window]),
        "threads": torch.get_num_threads(),
        "version": trl.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-llama", help="tiny-llama | tiny-qwen2 | smollm2-135m-instruct | a folder")
    ap.add_argument("--prompts", type=int, default=4, help="P prompts per step")
    ap.add_argument("--group", type=int, default=8, help="G completions per prompt (TRL num_generations)")
    ap.add_argument("--length", type=int, default=64, help="L new tokens per completion (eos suppressed)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["both", "mmthink", "trl"], default="both")
    ap.add_argument("--rounds", type=int, default=2,
                    help="fresh runs per side, in alternating order (mmthink, TRL, TRL, mmthink, ...)")
    ap.add_argument("--trl-first", action="store_true", help="run TRL before mmthink (default: mmthink first)")
    args = ap.parse_args()

    import torch
    import transformers

    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads_used = torch.get_num_threads()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load_before + args.threads_used > (os.cpu_count() or 1) + 0.5:
        print(f"warning: 1-min load average {load_before:.2f} with {args.threads_used} torch threads on "
              f"{os.cpu_count()} CPUs: other processes compete for the cores; times will scatter "
              "(--threads 1 keeps them steadier)", flush=True)

    sides = ["mmthink", "trl"] if args.only == "both" else [args.only]
    if args.trl_first:
        sides.reverse()
    # Rounds alternate the order (A B, B A, ...) so a drifting machine load hits both sides alike.
    runs: dict = {side: [] for side in sides}
    errors: dict = {}
    for rnd in range(args.rounds):
        for side in (sides if rnd % 2 == 0 else sides[::-1]):
            if side in errors:
                continue
            torch.set_num_threads(args.threads_used)
            try:
                runs[side].append((run_mmthink if side == "mmthink" else run_trl)(args))
            except ImportError as e:
                if side != "trl":
                    raise
                errors[side] = f"TRL not installed ({e}); pip install --no-deps -r benchmarks/requirements-bench.txt"
            except Exception as e:  # report TRL failures and keep the mmthink numbers
                if side != "trl":
                    raise
                errors[side] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    results = {}
    for side, rs in runs.items():
        if rs:
            results[side] = {
                "step": [x for r in rs for x in r["step"]],
                "gen": [x for r in rs for x in r["gen"]],
                "round_medians": [statistics.median(r["step"]) for r in rs],
                **{k: statistics.mean(r[k] for r in rs) for k in ("completion_len", "prompt_len", "reward")},
                "threads": rs[-1]["threads"],
                "version": rs[-1].get("version"),
            }

    trl_version = results.get("trl", {}).get("version")
    if trl_version is None:
        try:
            from importlib.metadata import version

            trl_version = version("trl")
        except Exception:
            trl_version = "not installed"
    print()
    print(f"RL step benchmark: model={args.model} P={args.prompts} G={args.group} L={args.length} "
          f"({args.prompts * args.group} sequences, one micro-batch, one AdamW step, beta=0, 1 iteration), "
          f"lr={args.lr}, {args.rounds} round(s) per side of {args.warmup} warm-up + {args.steps} timed steps")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl_version}, "
          f"torch threads {args.threads_used}, device cpu")
    print("lengths matched: an LM-head hook sets the eos/pad logits to -1e4 in both samplers "
          f"(max new tokens {args.length} on both)")
    print()
    head = f"{'engine':<10} {'step median s':>14} {'min s':>8} {'max s':>8} {'generation s':>13} {'rest s':>8} " \
           f"{'completion len':>15} {'prompt len':>11} {'reward':>7}  round medians s"
    print(head)
    print("-" * len(head))
    for side in sides:
        if side in errors or side not in results:
            print(f"{side:<10} failed: {errors[side]}")
            continue
        r = results[side]
        step, gen = statistics.median(r["step"]), statistics.median(r["gen"])
        print(f"{side:<10} {step:>14.3f} {min(r['step']):>8.3f} {max(r['step']):>8.3f} {gen:>13.3f} "
              f"{step - gen:>8.3f} {r['completion_len']:>15.1f} {r['prompt_len']:>11.1f} {r['reward']:>7.3f}  "
              + " ".join(f"{x:.3f}" for x in r["round_medians"]))
        if r["threads"] != args.threads_used:
            print(f"  warning: {side} ran with {r['threads']} torch threads")
    print()
    if "mmthink" in results and "trl" in results:
        ratio = statistics.median(results["mmthink"]["step"]) / statistics.median(results["trl"]["step"])
        gen_ratio = statistics.median(results["mmthink"]["gen"]) / statistics.median(results["trl"]["gen"])
        print(f"mmthink / TRL step time: {ratio:.2f}  (target <= 0.70; generation alone: {gen_ratio:.2f})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} CPUs, 1-min load average {load_before:.2f} at the start, {load:.2f} at the end "
          "(other processes on the CPUs inflate and scatter both sides' times)")
    cmd = " ".join(["python", "benchmarks/bench_rl_step.py"] + [a for a in sys.argv[1:]])
    extra = [] if any(a.startswith("--threads") for a in sys.argv[1:]) else [f"--threads {args.threads_used}"]
    print("reproduce: " + " ".join([cmd] + extra))


if __name__ == "__main__":
    main()
