"""The shape of the code, checked: dependencies point one way, no import cycles, every error type
in one module, the domain core light to import, every package shipped.

Layers, lowest first: a module imports only from its own layer or lower, and packages of one
layer import each other without a cycle. Function-local and TYPE_CHECKING imports count too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYERS = [
    ["prsm.types", "prsm.errors", "prsm.metrics", "prsm.logs"],  # import nothing of PRSM
    ["prsm.settings", "prsm.db", "prsm.sealing", "prsm.egress"],
    [
        "prsm.ftns",
        "prsm.storage",
        "prsm.registry",
        "prsm.quality",
        "prsm.clusters",
        "prsm.consent",
        "prsm.safety",
        "prsm.audit",
    ],
    ["prsm.chain", "prsm.weights", "prsm.backends", "prsm.keys", "prsm.canary"],
    ["prsm.nwtn"],
    ["prsm.api", "prsm.services"],
    ["prsm.distill", "prsm.ops", "prsm.backup", "prsm.stats", "prsm.loop", "prsm.federation"],
    ["prsm.cli"],
]


def unit(module: str) -> str:
    """The layered unit a module belongs to: `prsm.<package>` or a top-level `prsm.<module>`."""
    return ".".join(module.split(".")[:2])


def layer(module: str) -> int:
    for i, units in enumerate(LAYERS):
        if unit(module) in units:
            return i
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((REPO / "prsm").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The PRSM (and deployments) modules a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "prsm":  # `from prsm import metrics`: the root package itself holds nothing
                continue
            if name.split(".")[0] == "deployments":
                found.add("deployments")
            elif name in known:
                found.add(name)
    return found


GRAPH = {name: imports(path, set(modules())) for name, path in modules().items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_dependencies_point_down_the_layers():
    upward = [
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
        for a, targets in GRAPH.items()
        for b in targets
        if b != "deployments" and layer(b) > layer(a)
    ]
    assert upward == []


def test_the_library_never_imports_the_deployments():
    assert [a for a, targets in GRAPH.items() if "deployments" in targets] == []


def test_no_module_imports_its_way_back_to_itself():
    assert cycles({a: {b for b in t if b != "deployments"} for a, t in GRAPH.items()}) == []


def test_no_two_packages_import_each_other():
    packages: dict[str, set[str]] = {}
    for a, targets in GRAPH.items():
        packages.setdefault(unit(a), set()).update(
            unit(b) for b in targets if b != "deployments" and unit(b) != unit(a)
        )
    assert cycles(packages) == []


def test_the_leaf_modules_import_nothing_of_prsm():
    assert GRAPH["prsm.types"] == set() and GRAPH["prsm.errors"] == set()


def test_the_checks_find_what_they_look_for():
    # The same functions flag a cycle and an upward import when there is one.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("prsm.cli.ftns") > layer("prsm.nwtn.orchestrator") > layer("prsm.ftns.ledger")


def test_every_error_type_is_defined_in_the_errors_module():
    from prsm import errors

    names = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, errors.PRSMError)}
    elsewhere = []
    for name, path in modules().items():
        if name == "prsm.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & names:
                    elsewhere.append(f"{name}.{node.name}")
    assert elsewhere == []


def test_importing_the_domain_core_imports_neither_torch_nor_ray():
    core = [m for m in modules() if unit(m) in ("prsm.nwtn", "prsm.ftns", "prsm.registry", "prsm.services")]
    core.remove("prsm.nwtn.embed")  # the embedder is where the torch work is
    code = f"import sys; import {', '.join(core)}; print(sorted(m for m in ('torch', 'ray', 'transformers') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("package", sorted(m for m, p in modules().items() if p.name == "__init__.py"))
def test_every_package_is_shipped(package):
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert package in listed


def test_the_cli_starts_the_app_the_serve_config_names():
    import yaml

    from prsm.cli.stack import APP_IMPORT_PATH

    config = yaml.safe_load((REPO / "deployments" / "prsm.yaml").read_text())
    assert [app["import_path"] for app in config["applications"]] == [APP_IMPORT_PATH]
