"""``mmthink train evoscale``: classical SFT -> mutation SFT -> RL with the improvement reward.

Flow: check the recipe -> training rows (prompt + completion: ``mmthink data digits``) -> stage
``sft``: task -> solution -> stage ``mutation``: for each problem, K outputs sampled from the model
so far form the conditioning set E, and the model learns (x, E) -> the solution -> stage ``rl``: GRPO
(the shared engine) on conditioning prompts whose E the model sampled at the start of the stage,
rewarded by R(x, y) - R(x, y') - lambda F(y) -> save ``model/``. Afterwards ``eval evoscale`` with
``evo.scorer=none`` measures self-evolution: does the mean score rise across iterations without a
scorer? Each stage runs in ``output_dir/<stage>``; finished stages are not run again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from mmthink.config import to_yaml
from mmthink.data.rows import load_rows
from mmthink.io import write_jsonl
from mmthink.methods.evoscale.config import EvoScaleRecipe
from mmthink.methods.evoscale.rewards import shaped_reward
from mmthink.methods.evoscale.search import conditioning_prompt
from mmthink.methods.evoscale.tasks import kind_of, problem_id, prompt_of, scorer, validate_row
from mmthink.models.loading import load_model
from mmthink.rl.rewards import reward_stats
from mmthink.rl.trainer import RLTask, rl_runner_config, train_rl
from mmthink.runner import world_size
from mmthink.runner.checkpoint import save_final
from mmthink.runner.loop import fit, make_accelerator
from mmthink.runner.session import Stage, run_stages
from mmthink.runner.sft import sft_task, tokenize_rows
from mmthink.tasks import constraints


def _target(row: dict) -> str:
    """The better output a problem is trained towards: its completion (digits) or canonical program (code)."""
    if "completion" in row:
        return row["completion"]
    if kind_of(row) == "code":
        return f"```python\n{row['prompt']}{row['canonical_solution']}```"
    raise ValueError(f"row {problem_id(row)} has no completion to learn")


def conditioned_rows(model, tokenizer, rows: list, k: int, temperature: float, max_new_tokens: int, seed: int,
                     score, show_scores: bool, max_chars: int, chat: bool = True) -> list[dict]:
    """Each row with E: K outputs of ``model`` for its task prompt, their scores, and the conditioning prompt."""
    from mmthink.ops.sampler import LocalSampler

    texts = LocalSampler(model, tokenizer, chat=chat).sample([prompt_of(r) for r in rows], k, max_new_tokens,
                                                            temperature, 1.0, seed)
    scores = score([(r, y) for r, ys in zip(rows, texts) for y in ys])
    out = []
    for i, r in enumerate(rows):
        parents = list(zip(texts[i], scores[i * k:(i + 1) * k]))
        out.append(dict(r, parents=[t for t, _ in parents], parent_scores=[s for _, s in parents],
                        conditioning=conditioning_prompt(prompt_of(r), parents, show_scores, max_chars)))
    return out


def train(cfg: EvoScaleRecipe, command: Sequence[str] = ()) -> dict:
    world = world_size()
    cfg.check_training(world)
    out_dir = Path(cfg.output_dir)
    rows = [dict(r, id=problem_id(r)) for r in load_rows(cfg.data.train_file, validate_row, cfg.data.limit)]
    for r in rows:
        _target(r)
    first = cfg.stages[0]
    accelerator = make_accelerator(getattr(cfg, first).runner if first != "rl" else rl_runner_config(cfg.rl))
    loaded = load_model(cfg.model)
    model, tok = loaded.model, loaded.tokenizer
    score = scorer(cfg.eval.timeout_s)
    e = cfg.evo

    def sft(m, examples_rows, stage_cfg, stage):
        examples = tokenize_rows(examples_rows, tok, stage_cfg.max_length, packing=False)
        return fit(m, tok, sft_task(examples, tok, name=f"evoscale-{stage}"), stage_cfg.optim, stage_cfg.runner,
                   cfg.logging, out_dir / stage, cfg.seed, accelerator, config_yaml=to_yaml(cfg), command=command,
                   settings=f"{stage}.runner")

    def sample_parents(m, stage, problems, temperature, max_new_tokens):
        """E for each problem from the model as it is now; kept in the stage folder, so a resumed stage
        trains on the same rows."""
        path = out_dir / stage / "conditioning.jsonl"
        if path.is_file():
            return [json.loads(line) for line in path.read_text().splitlines()]
        # Each process samples a contiguous share, seeded as its rows would be in one process, so any
        # number of processes makes the same sets; the main process writes the gathered whole.
        world, rank = accelerator.num_processes, accelerator.process_index
        lo, hi = rank * len(problems) // world, (rank + 1) * len(problems) // world
        policy = accelerator.unwrap_model(m)
        policy.eval()
        made = conditioned_rows(policy, tok, problems[lo:hi], e.k, temperature, max_new_tokens, cfg.seed + lo * e.k,
                                score, e.show_scores, e.max_chars, cfg.sampler.chat)
        policy.train()
        if world > 1:
            from accelerate.utils import gather_object

            made = gather_object(made)
        if accelerator.is_main_process:
            write_jsonl(made, path)
        accelerator.wait_for_everyone()
        return made

    def run_sft(m):
        return sft(m, [{"prompt": prompt_of(r), "completion": _target(r)} for r in rows], cfg.sft, "sft")

    def run_mutation(m):
        mc = cfg.mutation
        problems = rows[: mc.problems] if mc.problems else rows
        made = sample_parents(m, "mutation", problems, mc.temperature, mc.max_new_tokens)
        accelerator.print(f"mutation: {len(made)} conditioning sets of {e.k}; their mean score "
                          f"{sum(sum(r['parent_scores']) for r in made) / (len(made) * e.k):.3f}")
        return sft(m, [{"prompt": r["conditioning"], "completion": _target(r)} for r in made], mc, "mutation")

    def run_rl(m):
        made = sample_parents(m, "rl", rows, cfg.rl.rollout.temperature, cfg.rl.rollout.max_new_tokens)
        chat = cfg.sampler.chat and getattr(tok, "chat_template", None) is not None

        def prompt(row):
            if not chat:
                return row["conditioning"]
            return tok.apply_chat_template([{"role": "user", "content": row["conditioning"]}], tokenize=False,
                                           add_generation_prompt=True)

        def reward(prompts, completions, batch_rows, group_size):
            of = [batch_rows[i // group_size] for i in range(len(completions))]
            scores = score(list(zip(of, completions)))
            formed = [constraints.well_formed(r, c) if kind_of(r) == "digits" else "```" in c
                      for r, c in zip(of, completions)]
            totals = [shaped_reward(s, r["parent_scores"], f, cfg.shaping.baseline, cfg.shaping.format_penalty)
                      for s, r, f in zip(scores, of, formed)]
            metrics = reward_stats("reward/shaped", totals, group_size)
            metrics.update(reward_stats("reward/score", scores, group_size))
            metrics["reward/well_formed"] = sum(formed) / len(formed)
            return totals, metrics

        task = RLTask(made, prompt, reward=reward, name="evoscale-rl")
        return train_rl(m, tok, task, cfg.rl, cfg.logging, out_dir / "rl", cfg.seed, accelerator,
                        config_yaml=to_yaml(cfg), command=command)

    runs = {"sft": (run_sft, cfg.sft.runner.resume), "mutation": (run_mutation, cfg.mutation.runner.resume),
            "rl": (run_rl, cfg.rl.resume)}
    plan = [Stage(s, out_dir / s, runs[s][0], runs[s][1], saves_model=s != "rl") for s in cfg.stages]
    model, metrics = run_stages(accelerator, model, tok, plan)
    save_final(accelerator, model, tok, out_dir)
    return metrics
