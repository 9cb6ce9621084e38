"""Tango's co-training: a generator and a generative step-level verifier, two policies in one process.

The schedule (``mode_at``): generator warm-up steps (rewarded by the truth alone), verifier warm-up steps,
then ``generator_steps`` generator steps to ``verifier_steps`` verifier steps, starting with the generator.

A generator step: n solutions per prompt → the verifier judges each (``verifier_rollouts`` times) →
outcome = truth (and, with gt_weight < 1, the verifier's final verdict) → process rewards ±1/S at each
step's end token where the verifier judged exactly S steps → A = (1 − α) A_out + α A_proc → GRPO update.

A verifier step: one solution per prompt → n judgments per (problem, solution) → reward
1[final verdict == truth] + 0.8 × format → GRPO over each solution's n judgments, each weighted by its
class's balancing weight → update. The verifier never sees step labels; ``verifier/step_agreement`` logs
how often its step verdicts agree with the arithmetic truth of each step (known here), to catch a
verifier that is right for the wrong reason.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from mmthink.errors import UserError
from mmthink.methods.tango import rewards as R
from mmthink.methods.tango.config import TangoRecipe
from mmthink.methods.tango.formats import (generator_format_score, generator_prompt, parse_judgment, step_spans,
                                           verifier_format_score, verifier_prompt)
from mmthink.rl import advantages as adv
from mmthink.rl.rollout import generate_rollouts
from mmthink.rl.trainer import Learner, reduce_metrics, step_prompt_indices
from mmthink.runner.session import RunSession
from mmthink.tasks.grading import grade
from mmthink.tasks.math import STEP_EQUATION, apply

GENERATOR, VERIFIER = "generator", "verifier"
# step verdicts that agree with the known truth, and those compared, summed over processes before the ratio
AGREE, JUDGED = "_agree", "_judged"


def mode_at(step: int, s) -> tuple[str, bool]:
    """(which policy step ``step`` (0-based) trains, whether it is a warm-up step); ``s`` the schedule."""
    if not s.verifier:
        return GENERATOR, False
    if step < s.generator_warmup:
        return GENERATOR, True
    if step < s.generator_warmup + s.verifier_warmup:
        return VERIFIER, True
    if s.generator_steps == 0:
        return VERIFIER, False
    if s.verifier_steps == 0:
        return GENERATOR, False
    r = (step - s.generator_warmup - s.verifier_warmup) % (s.generator_steps + s.verifier_steps)
    return (GENERATOR if r < s.generator_steps else VERIFIER), False


def generator_steps_after_warmup(s) -> int:
    """The generator steps of the alternating phase: α decays over them (the official count)."""
    if not s.verifier:
        return s.steps - s.generator_warmup
    rest = s.steps - s.generator_warmup - s.verifier_warmup
    return int(rest * s.generator_steps / (s.generator_steps + s.verifier_steps))


def _count(step: int, s, mode: str) -> int:
    """Steps of ``mode`` before ``step`` (they size each policy's LR schedule and set α's position)."""
    return sum(mode_at(i, s)[0] == mode for i in range(step))


def step_truths(text: str) -> list:
    """For each ``<step>`` of a solution: does its equation hold (None where it has none)?"""
    out = []
    for a, b in step_spans(text):
        m = STEP_EQUATION.search(text[a:b].removeprefix("<step>").removesuffix("</step>").strip())
        try:
            out.append(apply(int(m.group(1)), m.group(2), int(m.group(3))) == int(m.group(4)) if m else None)
        except ValueError:
            out.append(False)
    return out


def chat_text(tokenizer, text: str, chat: bool) -> str:
    if chat and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return text


class CoTrainer:
    """Both policies, their tokenizers and the class weights; ``step`` runs one step of the schedule."""

    def __init__(self, cfg: TangoRecipe, accelerator, gen_model, gen_tok, ver_model, ver_tok, rows: list):
        self.cfg, self.accelerator, self.rows = cfg, accelerator, rows
        self.gen_tok, self.ver_tok = gen_tok, ver_tok
        s = cfg.schedule
        g_steps, v_steps = _count(s.steps, s, GENERATOR), _count(s.steps, s, VERIFIER)
        self.G = Learner(gen_model, cfg.generator, accelerator, max(g_steps, 1) * cfg.generator.inner_epochs
                         * cfg.generator.mini_batches)
        self.V = None
        if s.verifier:
            self.V = Learner(ver_model, cfg.verifier, accelerator, max(v_steps, 1) * cfg.verifier.inner_epochs
                             * cfg.verifier.mini_batches)
        vr = cfg.verifier_reward
        self.weights = R.ClassWeights(vr.decay, vr.method)
        self.alpha_total = max(generator_steps_after_warmup(s), 1)

    # -- pieces ------------------------------------------------------------------------------------

    def _rows(self, step: int, per_step: int) -> list:
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        idx = step_prompt_indices(len(self.rows), per_step, step, self.cfg.seed)
        n = per_step // world
        return [self.rows[i] for i in idx[rank * n : (rank + 1) * n]]

    def _solutions(self, rows: list, n: int, gen: torch.Generator):
        r = self.cfg.generator.rollout
        prompts = [chat_text(self.gen_tok, generator_prompt(row["question"]), self.cfg.chat) for row in rows]
        ro = generate_rollouts(self.G.policy, self.gen_tok, prompts, n, r.max_new_tokens, r.temperature, r.top_p,
                               r.stop, r.batch_size, generator=gen)
        # The text the spans are read from is decoded exactly as the per-token offsets are.
        ids = [ro.completion_ids[i][: int(ro.attention[i].sum())].tolist() for i in range(len(ro.texts))]
        texts = [self.gen_tok.decode(x, skip_special_tokens=True) for x in ids]
        return ro, ids, texts

    def _judge(self, rows_of: list, solutions: list, n: int, gen: torch.Generator):
        r = self.cfg.verifier.rollout
        prompts = [chat_text(self.ver_tok, verifier_prompt(row["question"], text), self.cfg.chat)
                   for row, text in zip(rows_of, solutions)]
        ro = generate_rollouts(self.V.policy, self.ver_tok, prompts, n, r.max_new_tokens, r.temperature, r.top_p,
                               r.stop, r.batch_size, generator=gen)
        return ro, [parse_judgment(t) for t in ro.texts]

    # -- the two kinds of step -----------------------------------------------------------------------

    def generator_step(self, step: int, warmup: bool, gen: torch.Generator) -> tuple[dict, list]:
        cfg, g = self.cfg, self.cfg.generator
        rows = self._rows(step, g.prompts_per_step)
        n = g.rollout.group_size
        ro, ids, texts = self._solutions(rows, n, gen)
        rows_of = [rows[i // n] for i in range(len(texts))]
        correct = [grade(t, row["answer"]) for t, row in zip(texts, rows_of)]
        fmt = [generator_format_score(t) for t in texts]
        gr = cfg.generator_reward
        outcome = [float(c) for c in correct]
        metrics = {"generator/accuracy": sum(correct) / len(correct), "generator/format": sum(fmt) / len(fmt),
                   "generator/steps": sum(len(step_spans(t)) for t in texts) / len(texts)}
        process = pmask = None
        alpha = None
        if self.V is not None and not warmup:
            k = gr.verifier_rollouts
            vro, judgments = self._judge([row for row in rows_of for _ in range(k)],
                                         [t for t in texts for _ in range(k)], 1, gen)
            t_len = ro.mask.shape[1]
            process = torch.zeros(len(texts), k, t_len, device=ro.mask.device)
            pmask = torch.zeros(len(texts), k, t_len, dtype=torch.bool, device=ro.mask.device)
            placed = agree = judged = 0
            for i, text in enumerate(texts):
                spans = step_spans(text)
                ends = R.step_end_tokens(spans, R.token_char_ends(self.gen_tok, ids[i])) if spans else []
                mixed = []
                for j in range(k):
                    jd = judgments[i * k + j]
                    # outcome: w_gt truth + (1 − w_gt) verdict where the verifier gave one, else the truth
                    mixed.append(gr.gt_weight * correct[i] + (1 - gr.gt_weight) * float(bool(jd.final))
                                 if jd.final is not None else float(correct[i]))
                    rew = R.process_rewards(jd.steps, len(spans), ends, t_len)
                    if rew is not None:
                        placed += 1
                        process[i, j] = torch.tensor(rew, device=process.device)
                        pmask[i, j, [min(t, t_len - 1) for t in ends]] = True
                        for verdict, truth in zip(jd.steps, step_truths(text)):
                            if truth is not None:
                                judged += 1
                                agree += verdict == truth
                outcome[i] = sum(mixed) / k
            alpha = R.alpha_at(_count(step, cfg.schedule, GENERATOR) - cfg.schedule.generator_warmup,
                               self.alpha_total, cfg.alpha.schedule, cfg.alpha.start, cfg.alpha.end,
                               cfg.alpha.target_frac)
            metrics.update({"generator/alpha": alpha, "generator/process_placed": placed / len(judgments),
                            "generator/verifier_says_correct": sum(bool(j.final) for j in judgments) / len(judgments),
                            AGREE: float(agree), JUDGED: float(judged)})
        outcome = [o + gr.format_weight * f for o, f in zip(outcome, fmt)]
        rewards = torch.tensor(outcome, dtype=torch.float32, device=ro.mask.device)
        a = R.mixed_advantage(rewards, process, pmask, ro.mask, n, alpha, g.advantage.eps)
        metrics.update({f"generator/{k}": v for k, v in self.G.learn(ro, a, step, cfg.seed).items()})
        metrics["generator/reward"] = sum(outcome) / len(outcome)
        metrics["generator/lr"] = self.G.lr
        samples = [{"policy": GENERATOR, "question": rows_of[i]["question"], "completion": texts[i],
                    "correct": correct[i], "reward": outcome[i]} for i in range(min(cfg.run.log_samples, len(texts)))]
        return metrics, samples

    def verifier_step(self, step: int, gen: torch.Generator) -> tuple[dict, list]:
        cfg, v = self.cfg, self.cfg.verifier
        rows = self._rows(step, v.prompts_per_step)
        _, _, texts = self._solutions(rows, 1, gen)
        correct = [grade(t, row["answer"]) for t, row in zip(texts, rows)]
        n = v.rollout.group_size
        vro, judgments = self._judge(rows, texts, n, gen)
        vr = cfg.verifier_reward
        rewards, fmts = [], []
        for i, jd in enumerate(judgments):
            sol = texts[i // n]
            f = verifier_format_score(vro.texts[i], len(step_spans(sol)), generator_format_score(sol))
            fmts.append(f)
            rewards.append(R.verifier_reward(jd.final, correct[i // n], f, vr.correctness_weight, vr.format_weight))
        r = torch.tensor(rewards, dtype=torch.float32, device=vro.mask.device)
        a = adv.group_normalized(r, n, v.advantage.std, v.advantage.eps, v.advantage.unbiased_std)[:, None] * vro.mask
        truths = [correct[i // n] for i in range(len(judgments))]
        weights = None
        metrics = {}
        if vr.reweight:
            counts = torch.tensor([float(sum(truths)), float(len(truths) - sum(truths))], device=vro.mask.device)
            counts = self.accelerator.reduce(counts, "sum").tolist()
            w = self.weights(truths, (counts[0], counts[1]))
            weights = torch.tensor(w, dtype=torch.float32, device=vro.mask.device)
            metrics.update({"verifier/weight_correct": self.weights.last[0],
                            "verifier/weight_incorrect": self.weights.last[1]})
        metrics.update({f"verifier/{k}": val for k, val in self.V.learn(vro, a, step, cfg.seed, weights=weights).items()})
        finals = [j.final for j in judgments]
        agree = judged = 0
        for i, jd in enumerate(judgments):
            truth_steps = step_truths(texts[i // n])
            if len(jd.steps) == len(truth_steps):
                for verdict, truth in zip(jd.steps, truth_steps):
                    if truth is not None:
                        judged += 1
                        agree += verdict == truth
        metrics.update({
            "verifier/reward": sum(rewards) / len(rewards), "verifier/format": sum(fmts) / len(fmts),
            "verifier/final_acc": sum(f is not None and f == t for f, t in zip(finals, truths)) / len(finals),
            "verifier/has_final": sum(f is not None for f in finals) / len(finals),
            "verifier/solutions_correct": sum(correct) / len(correct), "verifier/lr": self.V.lr,
        })
        metrics.update({AGREE: float(agree), JUDGED: float(judged)})
        samples = [{"policy": VERIFIER, "question": rows[i // n]["question"], "solution": texts[i // n],
                    "judgment": vro.texts[i], "truth": truths[i], "reward": rewards[i]}
                   for i in range(0, min(cfg.run.log_samples * n, len(judgments)), n)]
        return metrics, samples


def cotrain(cfg: TangoRecipe, accelerator, gen_model, gen_tok, ver_model, ver_tok, rows: list, out_dir: Path,
            evaluate=None, config_yaml: str = "", command=()) -> dict:
    """Run ``schedule.steps`` steps; checkpoints (generator + verifier + class weights) under ``out_dir``."""
    from accelerate.utils import DistributedType, set_seed

    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise UserError("train tango co-trains two models in one process group, which DeepSpeed does not take: "
                        "launch it with FSDP (recipes/accelerate/fsdp.yaml) or DDP")
    set_seed(cfg.seed)
    trainer = CoTrainer(cfg, accelerator, gen_model, gen_tok, ver_model, ver_tok, rows)

    def save(keep_last: int) -> None:
        from mmthink.runner.checkpoint import save_pretrained_model

        # every process gathers the verifier's (FSDP-sharded) weights; the main one writes them
        ver_state = accelerator.get_state_dict(trainer.V.model) if trainer.V is not None else None

        def extra(folder: Path) -> None:
            if trainer.V is not None:
                save_pretrained_model(accelerator.unwrap_model(trainer.V.model), ver_tok, folder / "verifier",
                                      ver_state)
            (folder / "tango_state.json").write_text(json.dumps(trainer.weights.state_dict()))

        run.save(trainer.G.model, gen_tok, keep_last, extra=extra)

    def load_extra(folder: Path) -> None:
        from mmthink.runner.checkpoint import load_weights

        if trainer.V is not None:
            load_weights(accelerator.unwrap_model(trainer.V.model), folder / "verifier")
        trainer.weights.load_state_dict(json.loads((folder / "tango_state.json").read_text()))

    r = cfg.run
    run = RunSession(accelerator, trainer.G.model, out_dir, r.resume, cfg.schedule.steps, cfg.logging, "tango",
                     config_yaml, list(command), {"world_size": accelerator.num_processes}, load_extra=load_extra,
                     allow_changes=r.resume_allow_changes, settings="run")
    state = run.state
    last: dict = {}
    with run:
        if evaluate and r.eval_every and state.step == 0:  # where both start (the official val_before_train)
            _evaluate(run, evaluate, trainer)
        while state.step < cfg.schedule.steps:
            t0 = time.monotonic()
            mode, warmup = mode_at(state.step, cfg.schedule)
            gen = torch.Generator(device=accelerator.device).manual_seed(
                cfg.seed * 1_000_003 + state.step * 1009 + accelerator.process_index)
            if mode == GENERATOR:
                metrics, samples = trainer.generator_step(state.step, warmup, gen)
            else:
                metrics, samples = trainer.verifier_step(state.step, gen)
            state.step += 1
            bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                raise UserError(f"the Tango losses became non-finite at step {state.step} ({', '.join(bad)}); "
                                f"no model was saved")
            metrics.update({"mode": 0.0 if mode == GENERATOR else 1.0, "step_s": time.monotonic() - t0})
            last = _reduce(accelerator, metrics)
            run.log(last)
            if accelerator.is_main_process and samples:
                with open(out_dir / "samples.jsonl", "a", encoding="utf-8") as f:
                    for s in samples:
                        f.write(json.dumps({"step": state.step, **s}) + "\n")
            shown = last.get("generator/accuracy", last.get("verifier/final_acc", float("nan")))
            run.progress.update(state.step, f"{mode} {'acc' if mode == GENERATOR else 'verdict acc'} {shown:.2f}")
            if evaluate and r.eval_every and state.step % r.eval_every == 0 and state.step < cfg.schedule.steps:
                last.update(_evaluate(run, evaluate, trainer))
            if r.save_every and state.step % r.save_every == 0:
                save(r.keep_last)
    if evaluate:
        last.update(_evaluate(run, evaluate, trainer))
    if run.metrics_log is not None:
        run.metrics_log.close()
    return {"trainer": trainer, "metrics": last}


def _evaluate(run, evaluate, trainer) -> dict:
    metrics = {f"eval/{k}": v for k, v in evaluate(trainer).items()}
    if run.metrics_log is not None:
        run.metrics_log.log(run.state.step, metrics)
    run.accelerator.print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics


def _reduce(accelerator, metrics: dict) -> dict:
    """Mean of each metric over processes (every process logs the same keys each step), and the step
    agreement from the summed counts."""
    out = reduce_metrics(accelerator, metrics)
    agree, judged = out.pop(AGREE, 0.0), out.pop(JUDGED, 0.0)
    if judged > 0:
        out["verifier/step_agreement"] = agree / judged
    return out

