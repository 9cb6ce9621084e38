"""``mmthink train tango`` and ``mmthink eval tango``.

train: check the recipe -> problems (the file, or generated into ``output_dir/data``), the step-labelled
set made from the held-out problems -> stage ``format``: the generator learns the ``<step>`` format (SFT)
-> (opt-in, ours) stage ``verifier_format``: the verifier learns its output format from judgments with
coin-flip verdicts -> stage ``rl``: co-training with the verifier (``cotrain.py``) -> ``model/`` (the generator) and
``verifier/model/``. With ``schedule.verifier=false`` the rl stage is outcome-only GRPO of the generator
at the same steps and samples (the baseline), and no verifier is loaded.

eval: the generator's accuracy on math rows and the verifier's F1 on their step-labelled versions; with
``eval.verifier_only=true`` the verifier alone judges any JSONL of solutions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from mmthink.config import to_yaml
from mmthink.data.rows import load_rows, need
from mmthink.errors import UserError
from mmthink.io import write_jsonl
from mmthink.methods.tango.config import TangoRecipe
from mmthink.methods.tango.data import format_rows, step_labelled, verifier_format_rows
from mmthink.models.loading import load_model
from mmthink.runner import world_size
from mmthink.runner.checkpoint import load_weights, save_final, write_eval
from mmthink.runner.config import RunnerConfig
from mmthink.runner.loop import fit, make_accelerator
from mmthink.runner.session import Stage, run_stages
from mmthink.runner.sft import sft_task, tokenize_rows
from mmthink.tasks import math as math_task


def _max_new(cfg: TangoRecipe, policy: str) -> int:
    return cfg.eval.max_new_tokens or getattr(cfg, policy).rollout.max_new_tokens


def train(cfg: TangoRecipe, command: Sequence[str] = ()) -> dict:
    from mmthink.methods.tango.cotrain import cotrain
    from mmthink.methods.tango.evaluate import generator_scores, verifier_scores

    world = world_size()
    cfg.check(world)
    out_dir = Path(cfg.output_dir)
    train_rows, held_out = math_task.problems_for_run(cfg.data, cfg.seed, out_dir)
    train_rows = [r for r in train_rows if r.get("steps")]
    if not train_rows:
        raise UserError(f"no training row of {cfg.data.train_file or 'the generated problems'} has 'steps': "
                        "Tango's format tuning and process rewards need step-by-step solutions")
    step_rows = step_labelled([r for r in held_out if r.get("step_values")], cfg.seed + 17)[: cfg.eval.step_rows]
    if step_rows:
        write_jsonl(step_rows, out_dir / "data" / "steps.jsonl")
    e = cfg.eval
    eval_rows = held_out[: e.limit] if e.limit else held_out
    accelerator = make_accelerator(cfg.format.runner if cfg.stages[0] == "format" else
                                   RunnerConfig(batch_size=cfg.generator.micro_batch_size,
                                                micro_batch_size=cfg.generator.micro_batch_size,
                                                mixed_precision=cfg.run.mixed_precision))
    gen = load_model(cfg.model)
    model, tok = gen.model, gen.tokenizer

    def run_format(m):
        f = cfg.format
        examples = tokenize_rows(format_rows(train_rows), tok, f.max_length, packing=False)
        return fit(m, tok, sft_task(examples, tok, name="tango-format"), f.optim, f.runner, cfg.logging,
                   out_dir / "format", cfg.seed, accelerator, config_yaml=to_yaml(cfg), command=command,
                   settings="format.runner")

    result: dict = {}

    def verifier_format(ver) -> None:
        """The opt-in verifier format stage (random verdicts); a finished one is loaded, not run again."""
        vf, folder = cfg.verifier_format, out_dir / "verifier_format"
        if vf.runner.resume != "never" and (folder / "model" / "config.json").is_file():
            load_weights(ver.model, folder / "model")
            accelerator.print(f"verifier_format already done: loaded {folder / 'model'}")
            return
        examples = tokenize_rows(verifier_format_rows(train_rows, cfg.seed), ver.tokenizer, vf.max_length,
                                 packing=False)
        fit(ver.model, ver.tokenizer, sft_task(examples, ver.tokenizer, name="tango-verifier-format"), vf.optim,
            vf.runner, cfg.logging, folder, cfg.seed, accelerator, config_yaml=to_yaml(cfg), command=command,
            settings="verifier_format.runner")
        save_final(accelerator, ver.model, ver.tokenizer, folder)

    def run_rl(m):
        ver = load_model(cfg.verifier_model) if cfg.schedule.verifier else None
        if ver is not None and "verifier_format" in cfg.stages:
            verifier_format(ver)
            ver.model = accelerator.unwrap_model(ver.model)

        def evaluate(trainer):
            if not accelerator.is_main_process:
                return {}
            metrics = {}
            if eval_rows:
                metrics.update(generator_scores(trainer.G.policy, tok, eval_rows, _max_new(cfg, "generator"),
                                                e.batch_size, cfg.chat)[0])
            if trainer.V is not None and step_rows:
                metrics.update(verifier_scores(trainer.V.policy, ver.tokenizer, step_rows, _max_new(cfg, "verifier"),
                                               e.batch_size, cfg.chat)[0])
            return metrics

        out = cotrain(cfg, accelerator, m, tok, ver.model if ver else None, ver.tokenizer if ver else None,
                      train_rows, out_dir / "rl", evaluate if (eval_rows or step_rows) else None, to_yaml(cfg),
                      command)
        result.update(out)
        return out["metrics"]

    # the verifier's own format stage runs at the start of the rl stage (it trains the other model)
    plan = [Stage(s, out_dir / s, run_format if s == "format" else run_rl,
                  cfg.format.runner.resume if s == "format" else cfg.run.resume, saves_model=s == "format")
            for s in cfg.stages if s != "verifier_format"]
    model, metrics = run_stages(accelerator, model, tok, plan)
    trainer = result.get("trainer")
    save_final(accelerator, trainer.G.model if trainer else model, tok, out_dir)
    if trainer is not None and trainer.V is not None:
        save_final(accelerator, trainer.V.model, trainer.ver_tok, out_dir / "verifier")
    return metrics


def _validate_solution(row: dict) -> None:
    need(row, "solution", str)
    if not isinstance(row.get("question", row.get("problem")), str):
        need(row, "question", str)


def _verifier_of(cfg: TangoRecipe, checkpoint: str) -> str:
    """eval.verifier, else the run's own ``verifier/model`` beside ``model/``, else verifier_model.name."""
    if cfg.eval.verifier:
        return cfg.eval.verifier
    sibling = Path(checkpoint).parent / "verifier" / "model"
    return str(sibling) if (sibling / "config.json").is_file() else cfg.verifier_model.name


def evaluate(cfg: TangoRecipe, checkpoint: str, data: str, out: Optional[str] = None) -> dict:
    """The generator (``checkpoint``) on math rows and the verifier on their step-labelled versions; with
    ``eval.verifier_only`` the verifier (``checkpoint``, or eval.verifier) judges rows with a solution."""
    from mmthink.methods.tango.evaluate import generator_scores, verifier_scores

    cfg.check_eval()
    e = cfg.eval
    report: dict = {"data": str(data), "checkpoint": checkpoint}
    if e.verifier_only:
        rows = load_rows(data, _validate_solution, e.limit)
        cfg.verifier_model.name = e.verifier or checkpoint
        ver = load_model(cfg.verifier_model, train=False)
        metrics, judged = verifier_scores(ver.model, ver.tokenizer, rows, _max_new(cfg, "verifier"), e.batch_size,
                                          cfg.chat)
        report.update(verifier=cfg.verifier_model.name, **metrics, judgments=judged)
        write_eval(report, out, checkpoint, cfg.output_dir)
        return metrics
    rows = math_task.load_math(data, e.limit)
    cfg.model.name = checkpoint
    gen = load_model(cfg.model, train=False)
    metrics, samples = generator_scores(gen.model, gen.tokenizer, rows, _max_new(cfg, "generator"), e.batch_size,
                                        cfg.chat)
    labelled = step_labelled([r for r in rows if r.get("step_values")], cfg.seed + 17)[: e.step_rows]
    if labelled:
        cfg.verifier_model.name = _verifier_of(cfg, checkpoint)
        del gen
        ver = load_model(cfg.verifier_model, train=False)
        v_metrics, judged = verifier_scores(ver.model, ver.tokenizer, labelled, _max_new(cfg, "verifier"),
                                            e.batch_size, cfg.chat)
        metrics.update(v_metrics)
        report["verifier"] = cfg.verifier_model.name
        report["judgments"] = judged
    report.update(metrics, samples=samples)
    write_eval(report, out, checkpoint, cfg.output_dir)
    return metrics
