"""``train evoscale --dry-run``: the recipe at its paper size, before a job waits in a queue.

The rows (the training file, or HumanEval problems as stand-ins when it is not made yet), the model at its
real size, the lengths EvoScale reaches (a task prompt plus K conditioning outputs plus the reply), memory
per device for each stage and for EvoScale's own sampling, and the mutation-SFT loss of a conditioning
row on a two-layer model of the real widths.
"""

from __future__ import annotations

from pathlib import Path

from mmthink.data.rows import load_rows
from mmthink.methods.evoscale.config import EvoScaleRecipe
from mmthink.methods.evoscale.search import conditioning_prompt
from mmthink.methods.evoscale.tasks import prompt_of, validate_row

SHAPE_PROMPT_CHARS, SHAPE_ATTEMPT_CHARS, SHAPE_TOKENS = 160, 16, 320


def _rows(cfg: EvoScaleRecipe, report) -> list[dict]:
    path = cfg.data.train_file
    if Path(path).is_file():
        rows = load_rows(path, validate_row, cfg.data.limit)
        report.fact("rows", f"{len(rows)} in {path}, all valid")
        return rows
    from mmthink.tasks import code

    rows = code.humaneval(limit=64)
    report.fact("rows", f"{path} is not made yet; the lengths are checked on HumanEval/0-63 (prompt, canonical "
                        f"solution) as stand-ins")
    return rows


def dry_run(cfg: EvoScaleRecipe, target) -> dict:
    from mmthink.methods.evoscale.train import _target
    from mmthink.models.paper import count_parameters
    from mmthink.runner import dryrun

    cfg.check_training(target.gpus)
    report = dryrun.Report("")
    rows = _rows(cfg, report)
    pm, meta, _ = dryrun.lm_surgery(cfg.model)
    report.title = f"train evoscale with {cfg.model.name} (config: {pm.source})"
    total, trainable = count_parameters(meta)
    report.fact("parameters", f"{total:,} ({trainable:,} trainable)")
    report.fact("accelerate estimate-memory", dryrun.accelerate_figure(meta))
    tok = dryrun.test_tokenizer(pm)
    e, mc = cfg.evo, cfg.mutation

    def n_tokens(text: str) -> int:
        return len(tok(text)["input_ids"])

    # The longest conditioning prompt: K outputs as long as the run lets them be (the target stands in).
    probe = rows[:64]
    task = max(n_tokens(prompt_of(r)) for r in probe)
    answer = max(n_tokens(_target(r)) for r in probe)
    conditioned = [conditioning_prompt(prompt_of(r), [(_target(r), 0.0)] * e.k, e.show_scores, e.max_chars)
                   for r in probe]
    cond = max(map(n_tokens, conditioned))
    report.fact("tokens", f"task prompt <= {task}, answer <= {answer}, conditioning prompt (K = {e.k}) <= {cond}; "
                          f"sft.max_length {cfg.sft.max_length}, mutation.max_length {mc.max_length}")
    for stage, need, limit in (("sft", task + answer, cfg.sft.max_length), ("mutation", cond + answer, mc.max_length)):
        if stage in cfg.stages and need > limit:
            report.fact("warning", f"{stage}: rows up to {need} tokens exceed {stage}.max_length {limit} and are cut")
    if "sft" in cfg.stages:
        report.estimates["classical SFT"] = dryrun.training_estimate(
            meta, cfg.model, cfg.sft.runner.mixed_precision, cfg.sft.runner.micro_batch_size, cfg.sft.max_length, target)
    if "mutation" in cfg.stages:
        report.estimates["mutation: sampling E"] = dryrun.inference_estimate(
            meta, cfg.model, cfg.sampler.batch_rows, task, target, mc.max_new_tokens)
        report.estimates["mutation SFT"] = dryrun.training_estimate(
            meta, cfg.model, mc.runner.mixed_precision, mc.runner.micro_batch_size, mc.max_length, target)
    if "rl" in cfg.stages:
        report.estimates["RL step"] = dryrun.rl_estimate(meta, cfg.model, cfg.rl, cond + cfg.rl.rollout.max_new_tokens,
                                                         target)
    report.estimates["EvoScale sampling"] = dryrun.inference_estimate(
        meta, cfg.model, cfg.sampler.batch_rows, cond, target, cfg.sampler.max_new_tokens)
    loss = []
    # Short rows: the loss at the real widths is the check. Full-length rows (about 1,000 tokens each with
    # the tiny tokenizer) put 2,048 positions through a 152k-word head and took 7 minutes on 2 cores.
    short = [conditioning_prompt(prompt_of(r)[:SHAPE_PROMPT_CHARS], [(_target(r), 0.0)] * e.k, e.show_scores,
                                 SHAPE_ATTEMPT_CHARS) for r in probe[:2]]
    pairs = [{"prompt": c, "completion": _target(r)} for c, r in zip(short, probe)]
    dryrun.shape_check("the mutation-SFT loss", lambda: loss.append(
        dryrun.chat_loss_check(dryrun.lm_shape_model(pm, cfg.model, tok), tok, pairs,
                               min(mc.max_length, SHAPE_TOKENS))))
    report.fact("shape check", f"2-layer model of the real widths: mutation-SFT loss {loss[0]:.3f} on 2 "
                               f"conditioning rows (task cut to {SHAPE_PROMPT_CHARS} characters, attempts to "
                               f"{SHAPE_ATTEMPT_CHARS}, rows to {min(mc.max_length, SHAPE_TOKENS)} tokens)")
    return dryrun.finish(report, target)
