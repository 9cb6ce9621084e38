"""``mmthink train sft`` and ``mmthink eval sft``: chat-format SFT of a causal LM.

Flow: check the recipe → read and validate the rows → load the model → tokenise (prompt tokens
masked, optional packing) → ``runner.fit`` → save ``model/``. The task itself lives in
``mmthink.runner.sft``, where other methods' supervised stages build it too. Raises ``UserError`` for a bad recipe, data file, row or model, before any file of
the run is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from mmthink.config import to_yaml
from mmthink.data.chat import validate_chat_row
from mmthink.data.rows import load_rows
from mmthink.methods.sft.config import SFTRecipe
from mmthink.models.loading import load_model
from mmthink.runner import world_size
from mmthink.runner.checkpoint import save_final, write_eval
from mmthink.runner.loop import fit, make_accelerator
from mmthink.runner.sft import evaluate_rows, sft_task, tokenize_rows


def _evaluate(model, tokenizer, rows, cfg: SFTRecipe, accelerator=None) -> dict:
    e = cfg.eval
    return evaluate_rows(model, tokenizer, rows, cfg.data.max_length, e.batch_size, e.max_new_tokens, e.limit,
                         accelerator)


def train(cfg: SFTRecipe, command: Sequence[str] = ()) -> dict:
    world = world_size()
    cfg.check(world)
    train_rows = load_rows(cfg.data.train_file, validate_chat_row, cfg.data.limit)
    eval_rows = load_rows(cfg.data.eval_file, validate_chat_row) if cfg.data.eval_file else None
    # The accelerator comes first so that DeepSpeed ZeRO-3 can shard the weights while they load.
    accelerator = make_accelerator(cfg.runner)
    loaded = load_model(cfg.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    examples = tokenize_rows(train_rows, tokenizer, cfg.data.max_length, cfg.data.packing)
    output_dir = Path(cfg.output_dir)
    evaluate = (lambda m, acc: _evaluate(m, tokenizer, eval_rows, cfg, acc)) if eval_rows is not None else None
    task = sft_task(examples, tokenizer, evaluate)
    metrics = fit(model, tokenizer, task, cfg.optim, cfg.runner, cfg.logging, output_dir, cfg.seed, accelerator,
                  config_yaml=to_yaml(cfg), command=command)
    save_final(accelerator, model, tokenizer, output_dir)
    return metrics


def evaluate(cfg: SFTRecipe, checkpoint: str, data: str, out: Optional[str] = None) -> dict:
    """Score ``checkpoint`` on the rows of ``data``; writes ``eval.json`` next to the checkpoint (or to ``out``)."""
    cfg.model.name = checkpoint  # a model folder, a LoRA adapter folder, a preset or a hub id
    cfg.model.lora.enabled = False
    cfg.model.check()
    rows = load_rows(data, validate_chat_row)
    loaded = load_model(cfg.model, train=False)
    loaded.model.eval()
    metrics = _evaluate(loaded.model, loaded.tokenizer, rows, cfg)
    write_eval({"data": str(data), "checkpoint": checkpoint, **metrics}, out, checkpoint, cfg.output_dir)
    return metrics


def dry_run(cfg: SFTRecipe, target) -> dict:
    """``train sft --dry-run``: the rows, the model at its real size, memory per device, one loss."""
    from mmthink.models.paper import count_parameters
    from mmthink.runner import dryrun

    cfg.check(target.gpus)
    rows = load_rows(cfg.data.train_file, validate_chat_row, cfg.data.limit)
    pm, meta, _ = dryrun.lm_surgery(cfg.model)
    total, trainable = count_parameters(meta)
    report = dryrun.Report(f"train sft with {cfg.model.name} (config: {pm.source})")
    report.fact("rows", f"{len(rows)} in {cfg.data.train_file}, all valid")
    report.fact("parameters", f"{total:,} ({trainable:,} trainable)")
    report.fact("accelerate estimate-memory", dryrun.accelerate_figure(meta))
    report.estimates["training step"] = dryrun.training_estimate(
        meta, cfg.model, cfg.runner.mixed_precision, cfg.runner.micro_batch_size, cfg.data.max_length, target)
    tok = dryrun.test_tokenizer(pm)
    loss = []
    dryrun.shape_check("the SFT loss", lambda: loss.append(
        dryrun.chat_loss_check(dryrun.lm_shape_model(pm, cfg.model, tok), tok, rows, cfg.data.max_length)))
    report.fact("shape check", f"2-layer model of the real widths: SFT loss {loss[0]:.3f} on 2 rows")
    return dryrun.finish(report, target)
