"""The app's import graph: everything `app.py` can import, at module level or inside a function, never reaches
`pipelines/` (the offline tools import the app's code, not the other way round) nor gradio from model code."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    for candidate in (ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Every project module `path` imports, wherever the import statement is (lazy imports included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # a package's __init__ runs too
                if _module_file(".".join(parts[:i])):
                    out.add(".".join(parts[:i]))
    return out


def reachable(start: str) -> dict[str, str]:
    """Project modules reachable from `start`: module -> the module that first imported it."""
    seen, todo = {start: ""}, [start]
    while todo:
        module = todo.pop()
        for dep in _imports(_module_file(module), module):
            if dep not in seen:
                seen[dep] = module
                todo.append(dep)
    return seen


def _chain(seen: dict[str, str], module: str) -> str:
    chain = [module]
    while seen[chain[-1]]:
        chain.append(seen[chain[-1]])
    return " <- ".join(chain)


def test_the_app_never_imports_pipelines():
    seen = reachable("app")
    assert "core.index_builds" in seen and "core.indexing" in seen  # the walk does follow lazy imports
    offending = [m for m in seen if m == "pipelines" or m.startswith("pipelines.")]
    assert not offending, "the app reaches the offline tools: " + "; ".join(_chain(seen, m) for m in offending)


def test_the_walk_sees_a_lazy_import(tmp_path):
    # the check itself can fail: a function-level import of pipelines is found
    assert "pipelines.build_index" in reachable("pipelines.shards")
