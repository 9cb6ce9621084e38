"""The shape of the package: one-way imports, methods that do not know each other, schemas that
import no implementation, and a command line that only mounts what the registry names.

Imports are read from the source (every ``import`` statement, also those inside functions), so a lazy
import counts as much as a module-level one.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

from mmthink import registry

PKG = Path(__file__).resolve().parents[1] / "mmthink"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """The mmthink modules ``path`` imports (``from a import b`` counts ``a.b`` when that is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {n for n in names if n in MODULES}
    return out


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(GRAPH[n]):
            if m.startswith(n + "."):  # a package importing its own submodule is not a circle
                continue
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(GRAPH):
        if n not in state and (found := visit(n)):
            return found
    return None


def _method(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "methods" else None


def test_the_graph_is_read():
    assert len(GRAPH) > 80
    assert "mmthink.methods.thermometer.scoring" in GRAPH["mmthink.methods.thermometer.extract"]
    assert "mmthink.runner.session" in GRAPH["mmthink.runner.loop"]


def test_no_import_circle():
    assert _cycle() is None, " -> ".join(_cycle())


def test_no_method_imports_another():
    crossings = [f"{a} imports {b}" for a, deps in GRAPH.items() for b in deps
                 if _method(a) and _method(b) and _method(a) != _method(b)]
    assert not crossings, "\n".join(crossings)


def test_shared_layers_import_no_method():
    wrong = [f"{a} imports {b}" for a, deps in GRAPH.items() for b in deps
             if not _method(a) and _method(b)]
    assert not wrong, "\n".join(wrong)


def test_schemas_import_only_schemas():
    wrong = [f"{name} imports {d}" for name, deps in GRAPH.items() if name.endswith(".config") for d in deps
             if d not in ("mmthink.config", "mmthink.errors", "mmthink.paths") and not d.endswith(".config")]
    assert not wrong, "\n".join(wrong)


def _tokens(path: Path) -> set[str]:
    """Names and string contents in a file's code (comments and docstrings left out)."""
    out = set()
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.NAME:
            out.add(tok.string)
        elif tok.type == tokenize.STRING and not tok.string.startswith(('"""', "'''")):
            out.add(ast.literal_eval(tok.string) if not tok.string[0] in "fF" else tok.string)
    return out


def test_cli_is_thin_and_names_no_method():
    path = PKG / "cli.py"
    assert len(path.read_text().splitlines()) <= 200
    named = set(registry.METHODS) | set(registry.verbs()) | set(registry.data_generators())
    used = _tokens(path) & named
    assert not used, f"cli.py names {sorted(used)}"


def _loaded_after(args: list[str]) -> list[str]:
    code = (
        "import sys\nfrom mmthink.cli import app\n"
        f"try:\n    app({args!r}, prog_name='mmthink')\nexcept SystemExit:\n    pass\n"
        "print('LOADED:', *sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')"
        " or m.startswith('mmthink.methods.')))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return res.stdout.split("LOADED:")[-1].split()


def test_help_loads_no_method_torch_or_transformers():
    assert _loaded_after(["--help"]) == []
    assert _loaded_after(["data", "--help"]) == []
    assert _loaded_after(["train", "--help"]) == []


def test_a_verb_loads_only_its_own_method():
    loaded = _loaded_after(["calibrate", "--help"])
    assert "mmthink.methods.thermometer.cli" in loaded
    assert not [m for m in loaded if m.startswith("mmthink.methods.") and ".thermometer" not in m]


def test_latent_modes_agree_between_schema_and_ops():
    # The schema keeps its own copy so that it imports no implementation.
    from mmthink.methods.mirage.config import LATENT_MODES
    from mmthink.ops.latent import LATENT_MODES as OPS_MODES

    assert tuple(LATENT_MODES) == tuple(OPS_MODES)
