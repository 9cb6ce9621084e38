"""``mmthink train bbpt`` and ``mmthink eval bbpt``: tune a distribution over soft prompts by querying a
black box, then score its predictive on the task's test set (and an OOD set).

train: task → black box (local model or endpoint) → search (or a baseline) → prompts.safetensors +
bbpt.json → eval.json. eval: the saved prompts, re-queried on any task of the same label set.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import torch

from mmthink.config import to_yaml
from mmthink.runner.checkpoint import write_eval
from mmthink.io import write_jsonl
from mmthink.errors import UserError
from mmthink.methods.bbpt.config import VOTING, BBPTRecipe
from mmthink.methods.bbpt.resume import SearchCheckpoint
from mmthink.runner.session import check_unchanged
from mmthink.runner.tracking import Progress, write_run_info
from mmthink.io import read_json, read_safetensors, write_dir_atomic, write_text_atomic


def make_box(box_cfg, task):
    """The black box of the recipe: a local model with the task's template and verbalizer, or an endpoint."""
    from mmthink.methods.bbpt.blackbox import HFBlackBox, LabelOnly, load_hf_model

    if box_cfg.endpoint:
        from mmthink.methods.bbpt.remote import RemoteBlackBox

        box = RemoteBlackBox(box_cfg.endpoint)
        if box.info.n_classes != len(task.labels):
            raise UserError(f"the endpoint answers {box.info.n_classes} classes; task '{task.name}' has {len(task.labels)}")
        if box.info.level == "labels" and box_cfg.level == "logits":
            raise UserError(f"the endpoint {box_cfg.endpoint} answers labels only: set box.level=labels")
    else:
        model, tok = load_hf_model(box_cfg.model, box_cfg.dtype, box_cfg.device)
        template = (box_cfg.template or task.template).replace("{label}", "{mask}")
        verbalizer = list(box_cfg.verbalizer or task.verbalizer)
        if len(verbalizer) != len(task.labels):
            raise UserError(f"box.verbalizer has {len(verbalizer)} words; task '{task.name}' has {len(task.labels)} classes")
        box = HFBlackBox(model, tok, template, verbalizer, box_cfg.n_prompt_tokens, "logits",
                         box_cfg.batch_size, box_cfg.max_length, box_cfg.placeholder)
    return LabelOnly(box) if box_cfg.level == "labels" and box.info.level == "logits" else box


def _split(rows, limit: Optional[int] = None):
    rows = rows[:limit] if limit else rows
    return [t for t, _ in rows], torch.tensor([y for _, y in rows], dtype=torch.long)


class _Ticker:
    """A progress bar over generations / rounds / steps that the searches tick once per step."""

    def __init__(self, total: int, desc: str, cfg: BBPTRecipe, box) -> None:
        self.bar = Progress(total, mode=cfg.logging.progress, every_s=cfg.logging.plain_every_s, desc=desc)
        self.box, self.done = box, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def update(self, n: int = 1) -> None:
        self.done += n
        self.bar.update(self.done, f"{self.box.queries} queries")


def _search(cfg: BBPTRecipe, box, task, ckpt=None):
    """(prompts (P, L, D) or None, weights (P,) or None, search log, peft model or None); ``ckpt``
    checkpoints (and resumes) the CMA-ES and ABC-SMC searches."""
    from mmthink.methods.bbpt import algorithms as alg
    from mmthink.methods.bbpt import prompt_tuning
    from mmthink.methods.bbpt.projection import random_projection

    train_x, train_y = _split(task.train)
    if cfg.algorithm == "zero_shot":
        return None, None, [], None
    if cfg.algorithm == "prompt_tuning":
        p = cfg.prompt_tuning
        with _Ticker(p.steps, "prompt tuning", cfg, box) as bar:
            model, log = prompt_tuning.train(box, train_x, train_y, cfg.box.n_prompt_tokens, p.steps, p.lr,
                                             p.batch_size, cfg.seed, progress=bar.update)
        return None, None, log, model
    i = box.info
    A = random_projection(cfg.projection.d, i.n_prompt_tokens, i.embed_dim, i.embedding_mean, i.embedding_std,
                          cfg.projection.seed)
    obj = alg.Objective(box, A, train_x, train_y, *_split(task.dev), votes=cfg.algorithm in VOTING)
    d = cfg.projection.d
    if cfg.algorithm == "cma_ensemble":
        c = cfg.cma
        with _Ticker(c.members * c.iters, "CMA-ES ensemble", cfg, box) as bar:
            z, w, log = alg.cma_ensemble(obj, d, c.members, c.popsize, c.iters, c.sigma0, c.eval_every, cfg.seed, bar.update,
                                         ckpt)
    elif cfg.algorithm == "cma_elbo":
        e = cfg.elbo
        with _Ticker(e.iters, "CMA-ES ELBO", cfg, box) as bar:
            z, w, log = alg.cma_elbo(obj, d, e.popsize, e.iters, e.sigma0, e.bound, e.n_mc, e.kl_weight,
                                     e.prior_var, e.n_samples, cfg.seed, bar.update, ckpt)
    elif cfg.algorithm == "snpe":
        from mmthink.methods.bbpt.snpe import snpe

        n = cfg.snpe
        with _Ticker(n.rounds, "SNPE rounds", cfg, box) as bar:
            z, w, log = snpe(obj, d, n.rounds, n.n_sims, n.n_samples, n.prior_var, n.batch, n.hidden_features,
                             n.num_transforms, n.max_epochs, cfg.seed, bar.update)
    else:
        a = cfg.abc
        with _Ticker(a.max_rounds, "ABC-SMC rounds", cfg, box) as bar:
            z, w, log = alg.abc_smc(obj, d, a.n_particles, a.popsize, a.prior_var, a.kernel_scale, a.max_batches,
                                    a.max_rounds, cfg.seed, bar.update, ckpt)
    return obj.prompts(z), w, log, None


def _probs(box, prompts, weights, texts, votes: bool, peft_model=None):
    from mmthink.methods.bbpt import prompt_tuning
    from mmthink.methods.bbpt.predictive import softmax_average, vote_histogram

    if peft_model is not None:
        return softmax_average(prompt_tuning.predict(peft_model, box, texts))
    if votes or box.info.level == "labels":
        return vote_histogram(box.labels(prompts, texts), box.info.n_classes, weights)
    return softmax_average(box.logits(prompts, texts), weights)


def _score(cfg: BBPTRecipe, box, task, prompts, weights, peft_model=None) -> dict:
    from mmthink.methods.bbpt.predictive import report
    from mmthink.tasks.textcls import load_task

    test_x, test_y = _split(task.test, cfg.eval.limit)
    before = box.queries
    votes = cfg.algorithm in VOTING
    probs = _probs(box, prompts, weights, test_x, votes, peft_model)
    ood_name = task.ood if cfg.eval.ood == "auto" else cfg.eval.ood
    probs_ood = None
    if ood_name:
        ood_x, _ = _split(load_task(ood_name).test, cfg.eval.limit)
        probs_ood = _probs(box, prompts, weights, ood_x, votes, peft_model)
    out = report(probs, test_y, probs_ood, cfg.eval.n_bins)
    out.update({"n_test": len(test_x), "ood_task": ood_name, "eval_queries": box.queries - before})
    return out


def _save(folder: Path, prompts, weights, meta: dict, peft_model) -> None:
    from safetensors.torch import save_file

    def fill(tmp: Path) -> None:
        if prompts is not None:
            save_file({"prompts": prompts.contiguous().float(), "weights": weights.contiguous().float()},
                      str(tmp / "prompts.safetensors"))
        if peft_model is not None:
            peft_model.save_pretrained(str(tmp / "prompt_tuning"))
        (tmp / "bbpt.json").write_text(json.dumps(meta, indent=2))

    write_dir_atomic(folder, fill)


def train(cfg: BBPTRecipe, command: Sequence[str] = ()) -> dict:
    from mmthink.tasks.textcls import load_task

    cfg.check(int(os.environ.get("WORLD_SIZE", "1")))
    torch.manual_seed(cfg.seed)
    task = load_task(cfg.task)
    out = Path(cfg.output_dir)
    box = make_box(cfg.box, task)
    ckpt = SearchCheckpoint(out / "checkpoints" / "search", box)
    if cfg.resume == "never":
        shutil.rmtree(ckpt.folder, ignore_errors=True)
    elif ckpt.path.is_file():
        check_unchanged(ckpt.folder, to_yaml(cfg), cfg.resume_allow_changes, settings="")
    out.mkdir(parents=True, exist_ok=True)
    write_run_info(out, to_yaml(cfg), list(command))
    prompts, weights, log, peft_model = _search(cfg, box, task, ckpt)
    train_queries, train_calls = box.queries, box.calls
    write_jsonl(log, out / "search_log.jsonl")
    meta = {"algorithm": cfg.algorithm, "task": task.name, "labels": task.labels, "level": box.info.level,
            "model": None if cfg.box.endpoint else cfg.box.model, "endpoint": cfg.box.endpoint,
            "box": asdict(cfg.box), "n_prompts": 0 if prompts is None else len(prompts),
            "train_queries": train_queries, "train_calls": train_calls}
    _save(out / "model", prompts, weights, meta, peft_model)
    metrics = {"train_queries": train_queries, **_score(cfg, box, task, prompts, weights, peft_model)}
    write_text_atomic(out / "model" / "eval.json", json.dumps(metrics, indent=2))
    return metrics


def load_result(folder: str | Path) -> tuple[dict, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """(bbpt.json, prompts or None, weights or None) of a saved run's model folder."""
    folder = Path(folder)
    if not (folder / "bbpt.json").is_file():
        raise UserError(f"{folder} holds no bbpt.json: not a model folder of 'mmthink train bbpt'")
    meta = read_json(folder / "bbpt.json")
    if (folder / "prompts.safetensors").is_file():
        t = read_safetensors(folder / "prompts.safetensors")
        return meta, t["prompts"], t["weights"]
    return meta, None, None


def evaluate(cfg: BBPTRecipe, checkpoint: str, data: str, out: Optional[str] = None) -> dict:
    """Score saved prompts on task ``data`` (a shipped task name or a task folder) with the saved black box."""
    from mmthink.methods.bbpt import prompt_tuning
    from mmthink.tasks.textcls import load_task

    meta, prompts, weights = load_result(checkpoint)
    for key, value in meta["box"].items():  # the black box the prompts were tuned for
        setattr(cfg.box, key, value)
    cfg.algorithm = meta["algorithm"]
    cfg.check()
    task = load_task(data)
    if len(task.labels) != len(meta["labels"]):
        raise UserError(f"task '{task.name}' has {len(task.labels)} classes; the prompts were tuned for {len(meta['labels'])}")
    box = make_box(cfg.box, task)
    peft_model = prompt_tuning.load(box, Path(checkpoint) / "prompt_tuning") if meta["algorithm"] == "prompt_tuning" else None
    metrics = _score(cfg, box, task, prompts, weights, peft_model)
    write_eval(metrics, out, checkpoint)
    return metrics


def dry_run(cfg: BBPTRecipe, target) -> dict:
    """``train bbpt --dry-run``: the task, the black-box LM at real size and the memory of its queries.
    The search itself runs on the CPU and keeps no model state."""
    from mmthink.models.config import ModelConfig
    from mmthink.models.paper import count_parameters
    from mmthink.runner import dryrun
    from mmthink.tasks.textcls import load_task

    cfg.check(target.gpus)
    task = load_task(cfg.task)
    report = dryrun.Report(f"train bbpt ({cfg.algorithm}) on {task.name}")
    report.fact("task", f"{len(task.labels)} classes: {', '.join(task.labels)}")
    if cfg.box.endpoint:
        report.fact("black box", f"remote at {cfg.box.endpoint}: nothing to place here")
        return dryrun.finish(report, target)
    model_cfg = ModelConfig(name=cfg.box.model, dtype=cfg.box.dtype)
    pm, meta, _ = dryrun.lm_surgery(model_cfg)
    report.fact("black box", f"{cfg.box.model} (config: {pm.source}), {count_parameters(meta)[0]:,} parameters")
    tokens = cfg.box.max_length + cfg.box.n_prompt_tokens
    report.estimates["a batch of queries"] = dryrun.inference_estimate(meta, model_cfg, cfg.box.batch_size, tokens, target)
    report.fact("shape check", "not run: the search calls the box through its tokenizer, which is not shipped")
    return dryrun.finish(report, target)
