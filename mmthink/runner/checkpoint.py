"""Checkpoints that resume exactly and are never seen half-written.

A checkpoint folder ``checkpoints/step-000040/`` holds ``model/`` (``save_pretrained``: safetensors,
config, tokenizer — or only the adapter for LoRA), the optimiser, scheduler and RNG states written by
``accelerator.save_state`` (which also handles FSDP/DeepSpeed shards), and ``trainer_state.json``
(step and data position). It is written under a temporary name and renamed when complete, so a
killed run leaves either the previous checkpoints or the new one, nothing in between.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from mmthink.errors import UserError
from mmthink.io import replace_dir, write_text_atomic
from mmthink.runner.config import STATE_FILE


_PREFIX = "step-"


@dataclass
class TrainState:
    step: int = 0  # optimiser steps done
    epoch: int = 0  # data epoch the next batch comes from
    batch_in_epoch: int = 0  # micro-batches of that epoch already consumed
    examples_seen: int = 0
    items_seen: int = 0  # loss items (e.g. target tokens) seen


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:06d}"


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (temporary folders are ignored)."""
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith(_PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(done, key=lambda p: int(p.name[len(_PREFIX):]))


def is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def save_pretrained_model(model, processors, folder: Path, state_dict=None) -> None:
    """``save_pretrained`` of the model and of its tokenizer (or a tuple: tokenizer, image processor)."""
    model.save_pretrained(str(folder), state_dict=state_dict, safe_serialization=True)
    for proc in processors if isinstance(processors, (tuple, list)) else (processors,):
        if proc is not None:
            proc.save_pretrained(str(folder))


def copy_weights(model, source) -> None:
    """Give ``model`` the weights of ``source`` (a model of the same architecture), in place: the
    accelerator, its optimiser and every caller keep the same parameter objects."""
    import torch

    mine, theirs = model.state_dict(), source.state_dict()
    if set(mine) != set(theirs) or any(mine[k].shape != theirs[k].shape for k in mine):
        missing = sorted(set(mine) ^ set(theirs)) or [k for k in mine if mine[k].shape != theirs[k].shape]
        raise UserError(f"the weights to load belong to another architecture (e.g. {missing[0]} differs)")
    with torch.no_grad():
        for k, v in mine.items():
            v.copy_(theirs[k])


def load_weights(model, model_dir: Path) -> None:
    """Load a saved ``model/`` folder into ``model`` in place, strictly.

    Through transformers' own loader: ``save_pretrained`` may write other key names than the model
    holds in memory (Qwen2.5-VL saves ``model.layers.*`` for ``model.language_model.layers.*``), and a
    plain state-dict load would then silently match nothing.
    """
    dtype = next(model.parameters()).dtype
    copy_weights(model, type(model).from_pretrained(str(model_dir), dtype=dtype))


def save_checkpoint(accelerator, model, tokenizer, state: TrainState, root: Path, keep_last: int,
                    extra: Optional[Callable[[Path], None]] = None) -> Path:
    """Write ``root/step-N`` atomically, then delete all but the newest ``keep_last``.

    ``extra(folder)`` writes a method's own files (a critic, replay buffers) into the folder before it
    is renamed; only the main process calls it.
    """
    final = root / checkpoint_name(state.step)
    tmp = root / f".tmp-{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    full_state = accelerator.get_state_dict(model)  # gathers FSDP/ZeRO-3 shards; every rank must call it

    def hook(models, weights, output_dir):
        # Weights go through save_pretrained (reloadable by plain transformers), not accelerate's file.
        weights.clear()

    handle = accelerator.register_save_state_pre_hook(hook)
    try:
        accelerator.save_state(str(tmp))
    finally:
        handle.remove()
    if accelerator.is_main_process:
        save_pretrained_model(unwrapped, tokenizer, tmp / "model", None if is_peft(unwrapped) else full_state)
        if extra is not None:
            extra(tmp)
        write_text_atomic(tmp / STATE_FILE, json.dumps(asdict(state), indent=2))
        os.replace(tmp, final)
        for old in list_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, model, folder: Path) -> TrainState:
    """Restore weights, optimiser, scheduler and RNG from ``folder``; return the saved position."""
    unwrapped = accelerator.unwrap_model(model)
    model_dir = folder / "model"
    if is_peft(unwrapped):
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(unwrapped, load_file(str(model_dir / "adapter_model.safetensors")))
    else:
        load_weights(unwrapped, model_dir)

    def hook(models, input_dir):
        models.clear()  # loaded above from model/

    handle = accelerator.register_load_state_pre_hook(hook)
    try:
        accelerator.load_state(str(folder))
    finally:
        handle.remove()
    return TrainState(**json.loads((folder / STATE_FILE).read_text()))


def find_resume(resume: str, root: Path) -> Optional[Path]:
    """The checkpoint to resume from for ``runner.resume`` = auto | never | a folder (checked by
    ``RunnerConfig.check``)."""
    if resume == "never":
        return None
    if resume == "auto":
        found = list_checkpoints(root)
        return found[-1] if found else None
    return Path(resume)


def save_final(accelerator, model, tokenizer, output_dir: Path) -> Path:
    """Write the trained model to ``output_dir/model`` (plain transformers folder), atomically.

    With LoRA the adapter goes to ``output_dir/adapter``; unless the base is quantised, ``model/``
    then holds the merged weights, so that evaluation and serving need no peft.
    """
    state_dict = accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return output_dir / "model"
    unwrapped = accelerator.unwrap_model(model)
    target = output_dir / "model"
    if is_peft(unwrapped):
        tmp = output_dir / ".tmp-adapter"
        shutil.rmtree(tmp, ignore_errors=True)
        save_pretrained_model(unwrapped, tokenizer, tmp)
        replace_dir(tmp, output_dir / "adapter")
        if getattr(unwrapped.base_model.model, "is_quantized", False):
            accelerator.wait_for_everyone()
            return output_dir / "adapter"
        unwrapped = unwrapped.merge_and_unload()
        state_dict = None
    tmp = output_dir / ".tmp-model"
    shutil.rmtree(tmp, ignore_errors=True)
    save_pretrained_model(unwrapped, tokenizer, tmp, state_dict)
    replace_dir(tmp, target)
    accelerator.wait_for_everyone()
    return target


def write_eval(report: dict, out: Optional[str], checkpoint: str, fallback: Optional[str] = None) -> Path:
    """``eval.json`` in ``out``, else beside the checkpoint folder (else in ``fallback``, e.g. the recipe's
    output_dir when the checkpoint is a preset or hub id); returns its path."""
    folder = Path(out) if out else (Path(checkpoint) if fallback is None or Path(checkpoint).is_dir() else Path(fallback))
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "eval.json", json.dumps(report, indent=2, default=str))
    return folder / "eval.json"
