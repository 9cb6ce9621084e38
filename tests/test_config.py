"""Recipes: inheritance, overrides, interpolation, typed results; every shipped recipe validates."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

from mmthink.config import load_recipe, read_recipe_tree, to_yaml
from mmthink.errors import UserError
from mmthink.methods.sft.config import SFTRecipe
from mmthink.paths import recipes_dir


def test_tiny_recipe_changes_only_model_data_and_budget():
    base = load_recipe("recipes/sft.yaml", [], SFTRecipe)
    tiny = load_recipe("recipes/tiny/sft.yaml", [], SFTRecipe)
    assert base.model.name == "smollm2-135m-instruct" and tiny.model.name == "tiny-llama"
    # Inherited untouched from the base recipe:
    assert tiny.data.train_file == base.data.train_file
    assert tiny.optim.scheduler == base.optim.scheduler and tiny.optim.warmup_ratio == base.optim.warmup_ratio


def test_overrides_are_typed_and_win():
    cfg = load_recipe("recipes/tiny/sft.yaml", ["optim.lr=1e-5", "runner.max_steps=7", "model.lora.enabled=true",
                                                "model.lora.target_modules=[q_proj]"], SFTRecipe)
    assert cfg.optim.lr == 1e-5 and isinstance(cfg.optim.lr, float)
    assert cfg.runner.max_steps == 7
    assert cfg.model.lora.enabled is True and cfg.model.lora.target_modules == ["q_proj"]


def test_interpolation_resolves(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {Path('recipes/tiny/sft.yaml').resolve()}\noutput_dir: runs/${{model.name}}-s${{seed}}\n")
    cfg = load_recipe(recipe, ["seed=3"], SFTRecipe)
    assert cfg.output_dir == "runs/tiny-llama-s3"


def test_unknown_key_suggests_the_closest(tmp_path):
    with pytest.raises(UserError, match=r"unknown override key 'runner.max_step' \(did you mean 'runner.max_steps'\?\)"):
        load_recipe("recipes/tiny/sft.yaml", ["runner.max_step=3"], SFTRecipe)


def test_resolved_yaml_round_trips(tmp_path):
    cfg = load_recipe("recipes/tiny/sft.yaml", ["optim.lr=0.002"], SFTRecipe)
    saved = tmp_path / "resolved.yaml"
    saved.write_text(to_yaml(cfg))
    assert load_recipe(saved, [], SFTRecipe) == cfg


@pytest.mark.parametrize("path", sorted(p for p in recipes_dir().rglob("*.yaml") if p.parent.name != "accelerate"),
                         ids=lambda p: str(p.relative_to(recipes_dir())))
def test_every_shipped_recipe_validates_and_documents_its_commands(path):
    from mmthink import registry

    text = path.read_text()
    method = read_recipe_tree(path).get("method")
    assert method, f"{path} names no method"
    cfg = load_recipe(path, [], registry.schema(method))
    cfg.check()
    head = text.split("\n\n")[0]
    row = registry.METHODS[method]
    if row.train is None:  # one-process commands: their own verb, SLURM, and a multi-GPU word
        needles = (f"mmthink {next(iter(row.verbs))}", "sbatch", "Several GPUs")
    else:
        needles = ("mmthink train", "accelerate launch", "sbatch")
    for needle in needles:
        assert needle in head, f"{path} does not open with a '{needle}' command"


def test_recipe_data_paths_resolve_from_any_folder(tmp_path, monkeypatch):
    from mmthink.config import load
    from mmthink.methods.sft.config import SFTRecipe

    monkeypatch.chdir(tmp_path)  # no data/ here
    cfg = load(SFTRecipe, "tiny/sft", [])
    assert Path(cfg.data.train_file).is_absolute() and Path(cfg.data.train_file).is_file()
    cfg = load(SFTRecipe, "tiny/sft", ["data.train_file=data/mine.jsonl"])
    assert cfg.data.train_file == "data/mine.jsonl"  # an override resolves against the current folder


def test_a_recipe_finds_data_beside_itself_and_the_current_folder_wins(tmp_path, monkeypatch):
    from mmthink.config import load
    from mmthink.methods.sft.config import SFTRecipe

    folder = tmp_path / "project"
    (folder / "rows").mkdir(parents=True)
    (folder / "rows" / "train.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    (folder / "my.yaml").write_text(f"base: {ROOT / 'recipes/tiny/sft.yaml'}\ndata:\n  train_file: rows/train.jsonl\n")
    monkeypatch.chdir(tmp_path)
    assert load(SFTRecipe, str(folder / "my.yaml"), []).data.train_file == str((folder / "rows/train.jsonl").resolve())
    monkeypatch.chdir(folder)
    assert load(SFTRecipe, "my.yaml", []).data.train_file == "rows/train.jsonl"  # exists here: unchanged


def test_print_config_shows_where_each_input_path_resolved(cli):
    res = cli("train", "sft", "--recipe", "recipes/tiny/sft.yaml", "--print-config")
    assert res.exit_code == 0
    assert f"# data.train_file -> {ROOT / 'data/toy/arith_train.jsonl'}" in res.stdout
