"""The dependency rule: benchmark.core (torch-free) <- engine (benchmark.*, methods, tasks); core <- reports; the
CLI on top. Checked statically (every import statement, including the lazy ones inside functions) and at run time
(a fresh interpreter imports the core, the reports and renders a report with figures), in one subprocess.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "benchmark" / "core"
REPORTS = ROOT / "reports"
HEAVY = ("torch", "torchaudio", "torchvision", "accelerate", "transformers", "timm", "huggingface_hub", "datasets")
# where spec_from_file_location may appear: load_plugin imports a user's own file (--plugin), never a project file
FILE_LOADERS = {"benchmark/registry.py"}


def _modules(pkg_dir: Path, pkg: str) -> list[str]:
    out = []
    for path in sorted(pkg_dir.rglob("*.py")):
        rel = path.relative_to(pkg_dir).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out.append(".".join([pkg, *parts]))
    return out


def _engine_prefixes() -> list[str]:
    """Every project module that is not the core or the reports: the engine, the CLI, methods, tasks."""
    names = ["methods", "tasks"]
    for p in sorted((ROOT / "benchmark").iterdir()):
        if p.name in ("core", "__init__.py", "__pycache__", "data"):
            continue
        if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()):
            names.append(f"benchmark.{p.stem}")
    return names


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            # `from pkg import sub` may import a submodule: check pkg.sub too
            out += [(node.lineno, name)] + [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return out


def _under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_core_and_reports_import_only_downward() -> None:
    engine = _engine_prefixes()
    bad = []
    for pkg_dir, pkg, forbidden in ((CORE, "benchmark.core", (*HEAVY, *engine, "reports")),
                                    (REPORTS, "reports", (*HEAVY, *engine))):
        for path, mod in zip(sorted(pkg_dir.rglob("*.py")), _modules(pkg_dir, pkg)):
            for line, name in _imports(path, mod):
                if _under(name, forbidden):
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_engine_never_imports_the_reports() -> None:
    """Only the CLI (on top) renders reports; the engine, methods and tasks do not know them."""
    bad = []
    for pkg in ("benchmark", "methods", "tasks"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("benchmark", "core") or rel.as_posix() == "benchmark/cli.py":
                continue
            module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            bad += [f"{rel}:{line} imports {name}" for line, name in _imports(path, module) if _under(name, ["reports"])]
    assert not bad, "\n".join(bad)


def test_no_project_module_is_loaded_by_file_path() -> None:
    users = set()
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith((".git/", "build/")) or ".egg-info/" in rel or rel == "tests/test_architecture.py":
            continue
        if "spec_from_file_location" in path.read_text(errors="replace"):
            users.add(rel)
    assert users <= FILE_LOADERS, f"importlib loading by file path in {sorted(users - FILE_LOADERS)}"


def test_fresh_interpreter_loads_no_torch_nor_engine(tmp_path: Path) -> None:
    """One subprocess: import every core module, then every reports module, then render a report with figures
    from stored scores; after each step no torch and no engine module is loaded, and the core loaded no reports."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_runs import make_run_dir

    run = make_run_dir(tmp_path / "run", seeds=(0, 1), betas=(1.0,))
    code = f"""
import importlib, json, sys
heavy, engine = {list(HEAVY)!r}, {_engine_prefixes()!r}
def loaded(prefixes):
    return sorted(m for m in sys.modules if any(m == p or m.startswith(p + ".") for p in prefixes))
steps = {{}}
for m in {_modules(CORE, "benchmark.core")!r}:
    importlib.import_module(m)
steps["core"] = loaded(heavy + engine + ["reports"])
for m in {_modules(REPORTS, "reports")!r}:
    importlib.import_module(m)
steps["reports"] = loaded(heavy + engine)
from reports import render_report
from reports.options import Options
render_report({str(run)!r}, options=Options(views=["uniform"], bootstrap=10), publish={str(tmp_path / "pub")!r})
steps["render"] = loaded(heavy + engine)
print(json.dumps(steps))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    steps = json.loads(proc.stdout.strip().splitlines()[-1])
    assert steps == {"core": [], "reports": [], "render": []}, steps
    # the render really ran, figures included
    assert (tmp_path / "pub" / "README.md").is_file() and (tmp_path / "pub" / "priorshift_fake-sl.png").is_file()


@pytest.mark.parametrize("name", ["UserError", "Param", "get_method", "Method", "Task"])
def test_package_names_resolve_lazily(name: str) -> None:
    import benchmark

    assert getattr(benchmark, name).__name__ == name
