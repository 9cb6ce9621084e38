"""Platform benchmark: CLI start-up time and SFT training throughput of mmthink vs transformers.Trainer.

Usage (from the repository root):
    .venv/bin/python benchmarks/bench_platform.py [--model tiny-llama] [--steps 40] [--batch 32] [--max-length 32]
    .venv/bin/python benchmarks/bench_platform.py --model smollm2-135m-instruct --steps 8 --batch 8 --max-length 64

Both trainers get the same initial weights, the same tokenised examples *in the same order* (the order
mmthink's sampler draws; HF reads them sequentially), the same collate, batch, optimiser (torch AdamW),
schedule, clipping and number of steps, fp32, no evaluation and no checkpoints. Each side first runs a
few warm-up steps, then its initial weights are restored and only ``fit(...)`` / ``trainer.train()`` is
timed (model loading and tokenisation are not). Timed runs alternate mmthink/HF ``--repeats`` times and
the fastest run of each side is reported.
"""

import os

# Set before anything imports huggingface_hub: the benchmark must never touch the network.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"

import argparse
import copy
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HF_SCHEDULER = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


def time_command(cmd: list, n: int) -> dict:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "n": n}


def cli_figures(n: int) -> dict:
    out = {"python -m mmthink.cli --help": time_command([sys.executable, "-m", "mmthink.cli", "--help"], n)}
    script = Path(sys.executable).parent / "mmthink"
    script = str(script) if script.exists() else shutil.which("mmthink")
    if script:
        out["mmthink --help"] = time_command([script, "--help"], n)
    # A fresh interpreter: this process has imported torch already.
    probe = "import mmthink.cli, sys; print('torch' in sys.modules, 'transformers' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True, capture_output=True, text=True)
    torch_in, tf_in = res.stdout.split()
    out["imports"] = {"torch": torch_in == "True", "transformers": tf_in == "True"}
    return out


def build_cfg(args, out_dir: str, steps: int):
    from mmthink.config import load_recipe
    from mmthink.methods.sft.config import SFTRecipe

    overrides = [f"model.name={args.model}", f"runner.max_steps={steps}", f"runner.batch_size={args.batch}",
                 f"runner.micro_batch_size={args.batch}", f"data.max_length={args.max_length}",
                 "runner.save_every=0", "runner.resume=never", "data.eval_file=null", f"output_dir={out_dir}",
                 "logging.progress=none", "model.dtype=float32"]
    return load_recipe(str(REPO / args.recipe), overrides, SFTRecipe)


def consumed_order(n_examples: int, cfg, steps: int) -> list:
    """Indices of the examples mmthink's sampler feeds to ``steps`` optimiser steps, in order."""
    from mmthink.runner.loop import EpochBatchSampler

    per_epoch = n_examples // cfg.runner.batch_size
    sampler = EpochBatchSampler(n_examples, cfg.runner.batch_size, per_epoch, cfg.seed)
    order, epoch = [], 0
    while len(order) < steps * cfg.runner.batch_size:
        sampler.set_position(epoch, 0)
        order += [i for batch in sampler for i in batch]
        epoch += 1
    return order[: steps * cfg.runner.batch_size]


class ForwardCounter:
    """Counts forward calls, to check that each side ran exactly the steps it was asked for."""

    def __init__(self, model):
        self.n = 0
        self.handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.n += 1


def run_mmthink(model, tokenizer, examples, cfg) -> tuple:
    from mmthink.data.chat import collate_right
    from mmthink.runner.sft import sft_loss
    from mmthink.runner.loop import Task, fit, make_accelerator

    # Built outside the timer, as the HF Trainer builds its Accelerator in __init__.
    accelerator = make_accelerator(cfg.runner)
    task = Task(train_data=examples, collate=lambda b: collate_right(b, tokenizer.pad_token_id), loss=sft_loss,
                name="sft")
    t0 = time.perf_counter()
    fit(model, tokenizer, task, cfg.optim, cfg.runner, cfg.logging, Path(cfg.output_dir), cfg.seed, accelerator)
    seconds = time.perf_counter() - t0
    losses = [json.loads(ln)["loss"] for ln in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    return seconds, statistics.mean(losses)


def run_hf(model, tokenizer, ordered_examples, cfg, out_dir: str) -> tuple:
    from transformers import Trainer, TrainingArguments

    from mmthink.data.chat import collate_right

    o = cfg.optim
    targs = TrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=cfg.runner.batch_size, gradient_accumulation_steps=1,
        max_steps=cfg.runner.max_steps, learning_rate=o.lr, weight_decay=o.weight_decay, adam_beta1=o.betas[0],
        adam_beta2=o.betas[1], adam_epsilon=o.eps, max_grad_norm=o.max_grad_norm,
        lr_scheduler_type=HF_SCHEDULER[o.scheduler],
        warmup_steps=o.warmup_steps or int(round(o.warmup_ratio * cfg.runner.max_steps)),
        optim="adamw_torch", seed=cfg.seed, save_strategy="no", eval_strategy="no", report_to=[],
        dataloader_num_workers=0, disable_tqdm=True, logging_steps=10**6, remove_unused_columns=False,
        train_sampling_strategy="sequential",  # the examples come already in mmthink's order
    )
    trainer = Trainer(model=model, args=targs, train_dataset=ordered_examples,
                      data_collator=lambda feats: collate_right(feats, tokenizer.pad_token_id))
    t0 = time.perf_counter()
    result = trainer.train()
    return time.perf_counter() - t0, result.training_loss


def throughput_figures(args) -> dict:
    import torch

    from mmthink.data.chat import validate_chat_row
    from mmthink.data.rows import load_rows
    from mmthink.runner.sft import tokenize_rows
    from mmthink.models.loading import load_model

    torch.set_num_threads(args.threads)
    # Other processes on the machine skew CPU timings: the load average is printed next to them.
    load_start = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="bench_platform_")
    cfg = build_cfg(args, tmp, args.steps)
    rows = load_rows(str(REPO / cfg.data.train_file), validate_chat_row, cfg.data.limit)
    # One load per side, so that neither shares module objects or optimiser state with the other.
    sides = {}
    for side in ("mmthink", "hf"):
        loaded = load_model(cfg.model)
        sides[side] = {"model": loaded.model, "tok": loaded.tokenizer,
                       "init": copy.deepcopy(loaded.model.state_dict()), "runs": [], "loss": None}
    examples = tokenize_rows(rows, sides["mmthink"]["tok"], cfg.data.max_length, packing=False)
    order = consumed_order(len(examples), cfg, args.steps)
    ordered = [examples[i] for i in order]
    n_params = sum(p.numel() for p in sides["mmthink"]["model"].parameters())
    b = cfg.runner.batch_size
    tokens = sum(len(ex["input_ids"]) for ex in ordered)  # == sum of attention_mask over the batches
    targets = sum(sum(lab != -100 for lab in ex["labels"][1:]) for ex in ordered)
    padded = sum(max(len(ex["input_ids"]) for ex in ordered[i : i + b]) * b for i in range(0, len(ordered), b))

    def once(side: str, steps: int) -> tuple:
        s = sides[side]
        s["model"].load_state_dict(s["init"])
        counter = ForwardCounter(s["model"])
        torch.manual_seed(cfg.seed)
        run_cfg = build_cfg(args, tempfile.mkdtemp(dir=tmp), steps)
        if side == "mmthink":
            seconds, loss = run_mmthink(s["model"], s["tok"], examples, run_cfg)
        else:
            seconds, loss = run_hf(s["model"], s["tok"], ordered[: steps * b], run_cfg, run_cfg.output_dir)
        counter.handle.remove()
        if counter.n != steps:
            raise RuntimeError(f"{side}: {counter.n} forward calls for {steps} steps")
        return seconds, loss

    for side in sides:  # warm-up: first-call costs of kernels, allocator and imports
        once(side, args.warmup_steps)
    for _ in range(args.repeats):
        for side in sides:
            seconds, loss = once(side, args.steps)
            sides[side]["runs"].append(seconds)
            sides[side]["loss"] = loss
    shutil.rmtree(tmp, ignore_errors=True)

    out = {"model": args.model, "recipe": args.recipe, "lr": cfg.optim.lr, "parameters": n_params, "steps": args.steps, "batch": b,
           "max_length": cfg.data.max_length, "threads": torch.get_num_threads(),
           "device": "cuda" if torch.cuda.is_available() else "cpu", "tokens": tokens, "target_tokens": targets,
           "padded_tokens": padded, "warmup_steps": args.warmup_steps, "repeats": args.repeats,
           "load_avg_1min": {"start": load_start, "end": os.getloadavg()[0]}}
    for side in sides:
        sec = min(sides[side]["runs"])
        out[side] = {"seconds": sec, "runs_s": sides[side]["runs"], "tokens_per_s": tokens / sec, "target_tokens_per_s": targets / sec,
                     "steps_per_s": args.steps / sec, "mean_step_loss": sides[side]["loss"]}
    out["ratio_mmthink_over_hf"] = out["mmthink"]["tokens_per_s"] / out["hf"]["tokens_per_s"]
    return out


def table(fig: dict, command: str) -> str:
    rows = []
    for name, t in fig.get("cli", {}).items():
        if name != "imports":
            rows.append((f"`{name}` wall time (median / min of {t['n']})", f"{t['median_s']:.3f} / {t['min_s']:.3f}", "s"))
    if "cli" in fig:
        imp = fig["cli"]["imports"]
        rows.append(("torch in sys.modules after import mmthink.cli", str(imp["torch"]), ""))
        rows.append(("transformers in sys.modules after import mmthink.cli", str(imp["transformers"]), ""))
    t = fig.get("train")
    if t:
        rows += [
            ("model / parameters", f"{t['model']} / {t['parameters']:,}", ""),
            ("recipe / lr", f"{t['recipe']} / {t['lr']:g}", ""),
            ("device / torch threads", f"{t['device']} / {t['threads']}", ""),
            ("steps x batch, max_length", f"{t['steps']} x {t['batch']}, {t['max_length']}", ""),
            ("tokens per timed run (attention_mask sum)", f"{t['tokens']:,}", "tokens"),
            ("target tokens per timed run", f"{t['target_tokens']:,}", "tokens"),
            ("padded positions per timed run", f"{t['padded_tokens']:,}", "tokens"),
            ("timing", f"{t['warmup_steps']} warm-up steps, best of {t['repeats']}", ""),
            ("1-min load average at start / end", "{start:.2f} / {end:.2f}".format(**t["load_avg_1min"]), ""),
        ]
        for side, label in (("mmthink", "mmthink fit"), ("hf", "HF Trainer.train")):
            s = t[side]
            rows += [(f"{label}: time (best)", f"{s['seconds']:.3f}", "s"),
                     (f"{label}: time of each timed run", " ".join(f"{x:.2f}" for x in s["runs_s"]), "s"),
                     (f"{label}: total tokens/s", f"{s['tokens_per_s']:,.0f}", "tokens/s"),
                     (f"{label}: target tokens/s", f"{s['target_tokens_per_s']:,.0f}", "tokens/s"),
                     (f"{label}: steps/s", f"{s['steps_per_s']:.2f}", "steps/s"),
                     (f"{label}: mean step loss", f"{s['mean_step_loss']:.4f}", "nats/token")]
        rows.append(("throughput ratio mmthink / HF", f"{t['ratio_mmthink_over_hf']:.3f}", "x"))
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in rows]
    return "\n".join(lines + ["", f"reproduce: {command}"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny-llama", help="a preset, hub id or local folder")
    p.add_argument("--recipe", help="SFT recipe for lr/schedule/clipping (default: recipes/tiny/sft.yaml for "
                   "tiny-* models, recipes/sft.yaml otherwise, whose lr suits a pretrained model)")
    p.add_argument("--steps", type=int, default=40, help="optimiser steps per timed run")
    p.add_argument("--batch", type=int, default=32, help="examples per step (no accumulation)")
    p.add_argument("--max-length", type=int, default=32)
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed steps each side runs first")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side, alternating; best reported")
    # 1 by default: on a small shared machine, intra-op threads that spin against other processes
    # make timings swing by 10x; 0 uses torch's default (one per core).
    p.add_argument("--threads", type=int, default=1, help="torch threads for both sides; 0: torch's default")
    p.add_argument("--cli-reps", type=int, default=5)
    p.add_argument("--skip-cli", action="store_true")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = p.parse_args()
    os.chdir(REPO)  # recipes hold paths relative to the repository root

    import torch

    args.threads = args.threads or torch.get_num_threads()
    args.recipe = args.recipe or ("recipes/tiny/sft.yaml" if args.model.startswith("tiny-") else "recipes/sft.yaml")
    python = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    command = shlex.join([python, "benchmarks/bench_platform.py", *sys.argv[1:]])
    fig: dict = {"command": command}
    if not args.skip_cli:
        fig["cli"] = cli_figures(args.cli_reps)
    if not args.skip_train:
        fig["train"] = throughput_figures(args)
    print(table(fig, command))
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2) + "\n")


if __name__ == "__main__":
    main()
