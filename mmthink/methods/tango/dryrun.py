"""``train tango --dry-run``: both policies at their paper size, before a job waits in a queue.

The problems (the file, or generated as the run would), each model at its real size, the lengths the
two formats reach (the generator's prompt and reply; the verifier's prompt holding a whole solution, and
its reply), memory per device for the format stage and for each kind of co-training step — both policies
stay resident with their optimiser states and their frozen references (the references are not sharded)
— and the format-tuning loss on a two-layer model of the generator's real widths.
"""

from __future__ import annotations

from types import SimpleNamespace

from mmthink.errors import UserError
from mmthink.methods.tango.config import TangoRecipe
from mmthink.methods.tango.data import format_rows
from mmthink.methods.tango.formats import generator_prompt, solution_text, verifier_prompt
from mmthink.tasks import math as math_task

SHAPE_TOKENS = 256


def _resident(meta, model_cfg, policy, target) -> dict:
    """What a policy holds between its own steps: weights, gradients, AdamW moments, and its reference."""
    from mmthink.models.paper import count_parameters
    from mmthink.runner import memory as mem
    from mmthink.runner.dryrun import _weights_dtype

    total, trainable = count_parameters(meta)
    b = mem.BYTES[_weights_dtype(model_cfg)]
    out = mem.model_states(total, trainable, b, target.strategy, target.gpus)
    out["reference"] = total * b if policy.loss.kl_coef > 0 else 0.0
    return out


def dry_run(cfg: TangoRecipe, target) -> dict:
    from mmthink.models.paper import count_parameters
    from mmthink.runner import dryrun
    from mmthink.runner import memory as mem

    cfg.check(target.gpus)
    if target.strategy in ("zero2", "zero3"):
        raise UserError("train tango co-trains two models in one process group, which DeepSpeed does not take: "
                        "check it with --strategy fsdp (or ddp)")
    d = cfg.data
    rows = math_task.load_math(d.train_file, d.limit) if d.train_file else \
        math_task.generate(64, cfg.seed + 1, tuple(d.kinds), tuple(d.levels))
    report = dryrun.Report(f"train tango: generator {cfg.model.name}, verifier {cfg.verifier_model.name}")
    report.fact("rows", f"{len(rows)} from {d.train_file}" if d.train_file else
                f"64 generated as the run would (of {d.n_train:,})")
    gpm, gmeta, _ = dryrun.lm_surgery(cfg.model)
    policies = [("generator", cfg.model, gpm, gmeta, cfg.generator)]
    if cfg.schedule.verifier:
        vpm, vmeta, _ = dryrun.lm_surgery(cfg.verifier_model)
        policies.append(("verifier", cfg.verifier_model, vpm, vmeta, cfg.verifier))
    for name, _, pm, meta, _ in policies:
        total, trainable = count_parameters(meta)
        report.fact(f"{name} parameters", f"{total:,} ({trainable:,} trainable; config: {pm.source})")
    tok = dryrun.test_tokenizer(gpm)

    def n_tokens(text: str) -> int:
        return len(tok(text)["input_ids"])

    probe = [r for r in rows[:64] if r.get("steps")]
    g_prompt = max(n_tokens(generator_prompt(r["question"])) for r in probe)
    target_len = max(n_tokens(solution_text(r["steps"], r["answer"])) for r in probe)
    g, v = cfg.generator.rollout, cfg.verifier.rollout
    # The verifier reads a whole solution: as long as the generator may write.
    v_prompt = max(n_tokens(verifier_prompt(r["question"], "")) for r in probe) + g.max_new_tokens
    report.fact("tokens", f"generator prompt <= {g_prompt} + reply {g.max_new_tokens}; verifier prompt <= {v_prompt} "
                          f"(a {g.max_new_tokens}-token solution in it) + reply {v.max_new_tokens}; "
                          f"format rows <= {g_prompt + target_len} (format.max_length {cfg.format.max_length})")
    if "format" in cfg.stages and g_prompt + target_len > cfg.format.max_length:
        report.fact("warning", f"format rows up to {g_prompt + target_len} tokens exceed format.max_length "
                               f"{cfg.format.max_length} and are cut")
    if "format" in cfg.stages:
        f = cfg.format
        report.estimates["format SFT"] = dryrun.training_estimate(gmeta, cfg.model, f.runner.mixed_precision,
                                                                  f.runner.micro_batch_size, f.max_length, target)
    if "rl" in cfg.stages:
        lengths = {"generator": g_prompt + g.max_new_tokens, "verifier": v_prompt + v.max_new_tokens}
        for name, model_cfg, _, meta, policy in policies:
            step = SimpleNamespace(mixed_precision=cfg.run.mixed_precision, micro_batch_size=policy.micro_batch_size,
                                   rollout=policy.rollout)
            est = dryrun.rl_estimate(meta, model_cfg, step, lengths[name], target)
            est.add("policy reference", _resident(meta, model_cfg, policy, target)["reference"])
            for other, o_cfg, _, o_meta, o_policy in policies:
                if other == name:
                    continue
                for k, val in _resident(o_meta, o_cfg, o_policy, target).items():
                    est.add(f"{other} (resident) {k}", val)
                if name == "generator":  # the verifier judges this step's solutions
                    est.add("verifier KV cache (judging)", mem.kv_cache_bytes(
                        o_policy.rollout.batch_size, lengths["verifier"], mem.model_shape(o_meta.config),
                        mem.BYTES[dryrun._weights_dtype(o_cfg)]))
            report.estimates[f"{name} step"] = est
    loss = []
    pairs = format_rows(probe[:2])
    dryrun.shape_check("the format-tuning loss", lambda: loss.append(
        dryrun.chat_loss_check(dryrun.lm_shape_model(gpm, cfg.model, tok), tok, pairs,
                               min(cfg.format.max_length, SHAPE_TOKENS))))
    report.fact("shape check", f"2-layer model of the generator's real widths: format-tuning loss {loss[0]:.3f} on "
                               f"2 rows (cut to {min(cfg.format.max_length, SHAPE_TOKENS)} tokens)")
    return dryrun.finish(report, target)
