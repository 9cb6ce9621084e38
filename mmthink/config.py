"""Recipes: YAML files read with OmegaConf into typed dataclasses.

A recipe may start from another one (``base: ../sft.yaml``, relative to the file), use ``${...}``
interpolation, and be changed from the command line with dotted overrides (``optim.lr=1e-5``).
Every key is checked against the method's dataclass: an unknown key or a wrong type is a
``UserError`` that names the key (and the closest valid one).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

from mmthink.errors import UserError

T = TypeVar("T")


def choice(key: str, value: Any, options: Sequence[Any]) -> None:
    """Refuse a value outside a closed set, naming the key and the options."""
    if value not in options:
        raise UserError(f"recipe key '{key}' must be one of {', '.join(map(str, options))}; got {value!r}")


def _read_yaml(path: Path):
    from omegaconf import DictConfig, OmegaConf
    from yaml import YAMLError

    if not path.is_file():
        raise UserError(f"recipe file not found: {path}")
    try:
        cfg = OmegaConf.load(path)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{where}: invalid YAML: {problem}") from None
    except Exception as e:  # OmegaConf rejects e.g. non-string keys
        raise UserError(f"{path}: cannot read recipe: {str(e).splitlines()[0]}") from None
    if not isinstance(cfg, DictConfig):
        raise UserError(f"{path}: a recipe must be a mapping of keys to values")
    return cfg


def recipe_files(path: str | Path) -> list[tuple[Path, Any]]:
    """(file, its contents without ``base``) for a recipe and its chain of ``base:`` files, most derived first."""
    chain: list[tuple[Path, Any]] = []
    path = Path(path).resolve()
    while True:
        if path in [p for p, _ in chain]:
            raise UserError(f"recipe inheritance loops back to {path}")
        cfg = _read_yaml(path)
        base = cfg.pop("base", None)
        chain.append((path, cfg))
        if base is None:
            return chain
        if not isinstance(base, str):
            raise UserError(f"{path}: 'base' must be a path to another recipe")
        path = (path.parent / base).resolve()


def read_recipe_tree(path: str | Path):
    """Read a recipe and the chain of ``base:`` files under it, later files winning."""
    from omegaconf import OmegaConf

    return OmegaConf.merge(*[cfg for _, cfg in reversed(recipe_files(path))])


def _unwrap_optional(tp):
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _all_keys(schema, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(schema):
        tp = _unwrap_optional(typing.get_type_hints(schema)[f.name])
        keys.append(prefix + f.name)
        if dataclasses.is_dataclass(tp):
            keys.extend(_all_keys(tp, prefix + f.name + "."))
    return keys


def _unknown_key(key: str, root_schema, where: str) -> UserError:
    close = difflib.get_close_matches(key, _all_keys(root_schema), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return UserError(f"unknown {where} key '{key}'{hint}")


def check_keys(cfg, schema, root_schema=None, prefix: str = "", where: str = "recipe") -> None:
    """Raise on the first key of ``cfg`` that the dataclass ``schema`` does not declare."""
    from omegaconf import DictConfig

    root_schema = root_schema or schema
    hints = typing.get_type_hints(schema)
    for key in cfg.keys():
        dotted = prefix + str(key)
        if key not in hints:
            raise _unknown_key(dotted, root_schema, where)
        tp = _unwrap_optional(hints[key])
        value = cfg._get_node(key)
        if dataclasses.is_dataclass(tp) and isinstance(value, DictConfig):
            check_keys(value, tp, root_schema, dotted + ".", where)


def parse_overrides(overrides: Sequence[str], schema):
    from omegaconf import OmegaConf

    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key or key != key.strip():
            raise UserError(f"override '{item}' must look like key=value (e.g. optim.lr=1e-5)")
    try:
        cfg = OmegaConf.from_dotlist(list(overrides))
    except Exception as e:
        raise UserError(f"cannot parse overrides: {str(e).splitlines()[0]}") from None
    check_keys(cfg, schema, where="override")
    return cfg


def build(schema: type[T], *layers) -> T:
    """Merge untyped layers onto the dataclass defaults and return the typed, resolved object."""
    from omegaconf import OmegaConf
    from omegaconf.errors import (
        ConfigKeyError,
        InterpolationResolutionError,
        MissingMandatoryValue,
        ValidationError,
    )

    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), *layers)
        obj = OmegaConf.to_object(merged)
    except MissingMandatoryValue as e:
        raise UserError(f"recipe key '{e.full_key}' is required") from None
    except InterpolationResolutionError as e:
        raise UserError(f"recipe key '{e.full_key}': {str(e.msg).splitlines()[0]}") from None
    except ConfigKeyError as e:
        raise _unknown_key(str(e.full_key or e.key), schema, "recipe") from None
    except ValidationError as e:
        if not (e.full_key or e.key):
            key = _section_given_a_value(schema, layers)
            raise UserError(f"recipe key '{key}' is a section: set its fields (e.g. {key}.<field>=...), "
                            "not a value") from None
        raise UserError(f"recipe key '{e.full_key or e.key}' has the wrong type: {_type_message(e)}") from None
    check_numbers(obj)
    return obj


def _section_given_a_value(schema, layers) -> str:
    # OmegaConf names no key when a whole section is given a scalar (``runner: 5``); find that section.
    from omegaconf import DictConfig

    def find(t, node, prefix):
        hints = typing.get_type_hints(t)
        for k, v in node.items():
            sub = _unwrap_optional(hints.get(k))
            if dataclasses.is_dataclass(sub):
                if not isinstance(v, DictConfig):
                    return f"{prefix}{k}"
                found = find(sub, v, f"{prefix}{k}.")
                if found:
                    return found
        return None

    for layer in layers:
        if isinstance(layer, DictConfig):
            found = find(schema, layer, "")
            if found:
                return found
    return "?"


# Ranges of numeric recipe fields, by field name, wherever the field sits: (low, high, low_open, high_open);
# None leaves that side open. Method-specific limits stay in each schema's check().
_AT_LEAST_1 = ("batch_size", "micro_batch_size", "max_new_tokens", "max_length", "group_size", "popsize", "members",
               "hidden", "iters", "keep_last", "log_every", "prompts_per_step", "inner_epochs", "mini_batches",
               "chunk_size", "n_particles", "n_samples", "n_sims", "rounds", "max_epochs", "num_transforms",
               "hidden_features", "replicates", "radius_replicates", "buffer_size", "flow_layers", "latent_dim",
               "encode_batch", "n_prompt_tokens", "r", "steps", "epochs", "limit", "n_mc", "max_batches", "max_rounds",
               "threads", "target_samples", "components_per_class", "n", "d", "batch", "n_train", "max_len",
               "curve_ns")
_NON_NEGATIVE = ("weight_decay", "max_grad_norm", "warmup_steps", "eval_every", "save_every", "num_workers",
                 "entropy_coef", "kl_coef", "max_back", "samples", "log_samples", "kl_anneal_epochs", "entropy_reg",
                 "bm_coef", "kl_weight", "lam", "value_clip", "init_seed", "seed", "val_every", "eps_low", "eps_high",
                 "restarts", "gamma", "plain_every_s", "n_eval", "reflect_bonus", "min_len")
_POSITIVE = ("lr", "eps", "sigma0", "temperature", "target_concentration", "kernel_scale", "prior_var", "gamma_shape",
             "gamma_scale", "alpha", "mixture_prior", "epsilon", "reward_clip", "clip", "lam0", "bound", "lam_growth")
_UNIT = {"warmup_ratio": (0, 1, False, False), "min_lr_ratio": (0, 1, False, False), "dropout": (0, 1, False, True), "top_p": (0, 1, True, False),
         "val_fraction": (0, 1, False, True), "holdout": (0, 1, False, True), "ratio": (0, 1, False, False),
         "delta": (0, 1, True, True), "quantile": (0, 1, True, False), "margin": (0, 1, True, False),
         "betas": (0, 1, False, True)}
RANGES = {**{k: (1, None, False, False) for k in _AT_LEAST_1}, **{k: (0, None, False, False) for k in _NON_NEGATIVE},
          **{k: (0, None, True, False) for k in _POSITIVE}, **_UNIT}


def _range_text(low, high, low_open, high_open) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_numbers(obj, prefix: str = "") -> None:
    """Every number of a recipe is finite and inside its field's range (``RANGES``), or a UserError names the key."""
    import math

    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_numbers(value, key + ".")
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if not math.isfinite(v):
                raise UserError(f"recipe key '{key}' must be a finite number; got {v}")
            rule = RANGES.get(f.name)
            if rule is None:
                continue
            low, high, low_open, high_open = rule
            if v < low or (low_open and v == low) or (high is not None and (v > high or (high_open and v == high))):
                raise UserError(f"recipe key '{key}' must be {_range_text(*rule)}; got {v:g}")


def _type_message(e) -> str:
    msg = str(e.msg).splitlines()[0]
    # OmegaConf says "Value 'abc' of type 'str' could not be converted to Float"; keep that part.
    return msg[0].lower() + msg[1:] if msg else "invalid value"


def load_recipe(path: str | Path, overrides: Sequence[str], schema: type[T]) -> T:
    """Read ``path`` (and its bases), apply ``overrides`` and return an instance of ``schema``."""
    tree = read_recipe_tree(path)
    check_keys(tree, schema)
    return build(schema, tree, parse_overrides(overrides, schema))


def to_yaml(obj) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(obj))


def find_recipe(name: str) -> Path:
    """A recipe file: a path, or the name of a shipped recipe (``tiny/sft``, ``sft.yaml``)."""
    from mmthink.paths import recipes_dir

    path = Path(name)
    if path.is_file():
        if path.suffix not in (".yaml", ".yml"):
            raise UserError(f"{path} is not a recipe: recipes are .yaml files")
        return path
    shipped = recipes_dir() / (name if name.endswith(".yaml") else f"{name}.yaml")
    if shipped.is_file():
        return shipped
    raise UserError(f"recipe file not found: {name}")


def load(schema: type[T], recipe: str | Path | None, overrides: Sequence[str], method: str | None = None) -> T:
    """The one recipe loader of every command: ``recipe`` (a path or shipped name; ``None``: the schema's
    defaults) with ``overrides`` applied, refused when it names another method than ``method``."""
    if recipe is not None:
        path = find_recipe(str(recipe))
        cfg = load_recipe(path, overrides, schema)
        resolve_data_paths(cfg, [p.parent for p, _ in recipe_files(path)], {o.partition("=")[0] for o in overrides})
    else:
        cfg = build(schema, parse_overrides(overrides, schema))
    if method is not None and getattr(cfg, "method", method) != method:
        raise UserError(f"recipe {recipe} is for method '{cfg.method}', not '{method}'")
    return cfg


# Recipe fields that name input files or folders. They resolve, in order, against the current directory
# (where the file exists there), the folders of the recipe and its bases, then the data shipped with
# the package; an override resolves against the current directory only. output_dir is not an input.
DATA_PATH_FIELDS = ("train_file", "eval_file", "test_file", "ood_file", "tasks_dir", "path", "image_root")


def resolve_data_paths(cfg, folders: Sequence[Path], overridden: set, prefix: str = "") -> None:
    """Rewrite relative input paths that do not exist here to where they exist (see DATA_PATH_FIELDS)."""
    from mmthink.paths import data_dir

    for f in dataclasses.fields(cfg):
        value, key = getattr(cfg, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            resolve_data_paths(value, folders, overridden, key + ".")
            continue
        if f.name not in DATA_PATH_FIELDS or not isinstance(value, str) or not value or key in overridden:
            continue
        rel = Path(value).expanduser()
        if rel.is_absolute() or rel.exists():
            continue
        shipped = [data_dir() / rel.relative_to("data")] if rel.parts[:1] == ("data",) else []
        for candidate in [folder / rel for folder in folders] + shipped:
            if candidate.exists():
                setattr(cfg, f.name, str(candidate.resolve()))
                break


def path_report(cfg, prefix: str = "") -> str:
    """``# key -> absolute path`` comment lines for the input paths of ``cfg`` (``--print-config``)."""
    lines = []
    for f in dataclasses.fields(cfg):
        value, key = getattr(cfg, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            lines.append(path_report(value, key + "."))
        elif f.name in DATA_PATH_FIELDS and isinstance(value, str) and value:
            where = Path(value).expanduser().resolve()
            lines.append(f"# {key} -> {where}{'' if where.exists() else ' (not found)'}\n")
    return "".join(lines)


def flatten(tree, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    out = {}
    for k, v in (tree or {}).items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_keys(old: dict, new: dict, allowed: Sequence[str] = ()) -> list[str]:
    """Flat keys whose values differ between ``old`` and ``new``, except those matching an ``allowed``
    pattern (fnmatch: ``optim.lr``, ``*.max_steps``)."""
    from fnmatch import fnmatch

    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return [k for k in keys if not any(fnmatch(k, pat) for pat in allowed)]


def describe_changes(old: dict, new: dict, keys: Sequence[str]) -> str:
    """``key: <old> there, <new> now; ...`` — the one-line diff of a refused resume or reuse."""
    return "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys)
