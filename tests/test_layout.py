"""The layout: one folder per component with one name everywhere, and an import graph without loops."""

from __future__ import annotations

import ast

from conftest import ROOT

from deploys import COMPONENTS, OPERATIONS, component
from hxinfra.components import Component


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in [*ROOT.glob("hxinfra/**/*.py"), *ROOT.glob("deploys/**/*.py")]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):  # lazy imports inside functions count too
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("hxinfra", "deploys"):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] in ("hxinfra", "deploys")}
        graph[name] = deps
    return graph


def test_the_import_graph_has_no_loop():
    graph = _imports()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join([*path, module])
        if module in done:
            return
        for dep in graph.get(module, ()):
            if dep in graph:
                visit(dep, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


def test_the_engine_imports_no_component_and_components_never_import_the_registry():
    graph = _imports()
    for module, deps in graph.items():
        if module.startswith("hxinfra"):
            assert not any(d.startswith("deploys") for d in deps), (module, deps)
        # only deploys.common, never the registry: except the site and the operations (patching), which
        # act on every component of a host, as the site does
        if module.startswith("deploys.") and module.split(".")[1] not in ("site", *OPERATIONS):
            assert "deploys" not in deps, module


def test_one_name_per_component_everywhere():
    for name in (*COMPONENTS, *OPERATIONS):
        contract, apply = component(name)
        assert isinstance(contract, Component) and contract.name == name and apply.__name__ == name
        assert (ROOT / "deploys" / name / "__init__.py").is_file()
        assert name in OPERATIONS or (ROOT / "templates" / name).is_dir()  # an operation may write no file
        assert (ROOT / "tests" / "deploys" / name / f"test_{name}.py").is_file()
        assert (ROOT / "tests" / "lab" / f"test_{name}_lab.py").is_file()
        assert all(k.startswith(f"{name}_") for k in contract.all_keys())


def test_site_calls_every_component_in_registry_order_each_from_its_own_line():
    """pyinfra orders operations by the line numbers of their call stack: one line per component
    keeps every operation of a component before the next component's (a loop would interleave)."""
    tree = ast.parse((ROOT / "deploys" / "site.py").read_text())
    site = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "site")
    calls = [
        (c.value.args[0].value, c.lineno)
        for c in site.body
        if isinstance(c, ast.Expr) and isinstance(c.value, ast.Call) and getattr(c.value.func, "id", "") == "_apply"
    ]
    assert [name for name, _ in calls] == list(COMPONENTS)
    assert len({line for _, line in calls}) == len(COMPONENTS)
