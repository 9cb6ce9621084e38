"""Every method of the toolkit by name, with where its recipe schema and entry points live.

Entries are import paths, not imports, so that ``mmthink --help`` loads no method (and no torch).
A method that is not built yet has ``None``: the CLI answers "not implemented yet" and exits 2.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Optional

from mmthink.errors import UserError


@dataclass(frozen=True)
class Method:
    schema: str  # "module:Class" of the recipe dataclass
    train: Optional[str] = None  # "module:function(cfg, command) -> metrics"
    eval: Optional[str] = None  # "module:function(cfg, checkpoint, data, out) -> metrics"


METHODS: dict[str, Optional[Method]] = {
    "sft": Method(
        schema="mmthink.methods.sft.config:SFTRecipe",
        train="mmthink.methods.sft.recipe:train",
        eval="mmthink.methods.sft.recipe:evaluate",
    ),
    "mirage": Method(
        schema="mmthink.methods.mirage.config:MirageRecipe",
        train="mmthink.methods.mirage.recipe:train",
        eval="mmthink.methods.mirage.recipe:evaluate",
    ),
    "satori": Method(
        schema="mmthink.methods.satori.config:SatoriRecipe",
        train="mmthink.methods.satori.recipe:train",
        eval="mmthink.methods.satori.recipe:evaluate",
    ),
    "evoscale": None,
    "tango": None,
    "tts": None,
    "mole": None,
    "edl": Method(
        schema="mmthink.methods.edl.config:EDLRecipe",
        train="mmthink.methods.edl.recipe:train",
        eval="mmthink.methods.edl.recipe:evaluate",
    ),
    "bbpt": Method(
        schema="mmthink.methods.bbpt.config:BBPTRecipe",
        train="mmthink.methods.bbpt.recipe:train",
        eval="mmthink.methods.bbpt.recipe:evaluate",
    ),
}

# Methods driven by their own commands (``mmthink calibrate ...``, ``mmthink fair ...``): recipe schemas.
COMMAND_METHODS: dict[str, tuple[str, str]] = {
    "thermometer": ("calibrate", "mmthink.methods.thermometer.config:ThermometerRecipe"),
    "fair": ("fair", "mmthink.methods.fair.config:FairRecipe"),
}

# Commands of the mission that are not methods of ``train``/``eval``.
COMMANDS_NOT_BUILT = {
    "serve": "OpenAI-style HTTP server",
    "video-explore": "VCA video exploration",
}


def load(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def schema(name: str) -> type:
    """The recipe schema of any method, trained through ``train`` or driven by its own command."""
    if name in COMMAND_METHODS:
        return load(COMMAND_METHODS[name][1])
    if METHODS.get(name) is None:
        raise UserError(f"unknown or unbuilt method '{name}'")
    return load(METHODS[name].schema)


def method(name: str, action: str) -> tuple[type, object]:
    """(recipe schema, entry point) of ``name`` for ``action`` ('train' or 'eval')."""
    if name not in METHODS:
        known = ", ".join(sorted(METHODS))
        raise UserError(f"unknown method '{name}'; known methods: {known}")
    entry = METHODS[name]
    target = getattr(entry, action) if entry else None
    if target is None:
        raise UserError(f"'{action} {name}' is not implemented yet")
    return load(entry.schema), load(target)
