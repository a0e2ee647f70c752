"""The layout: one folder per component with one name everywhere, and an import graph without loops."""

from __future__ import annotations

import ast

from conftest import ROOT

from deploys import COMPONENTS, OPERATIONS, component
from hxinfra.components import Component


def _module(path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports, lazy ones included: ``from pkg import name`` is an
    import of module ``pkg.name`` where that module exists (else of ``pkg``), and a string import
    (``importlib.import_module("deploys.x")``) counts as the import it is."""
    paths = [*ROOT.glob("hxinfra/**/*.py"), *ROOT.glob("deploys/**/*.py")]
    modules = {_module(p) for p in paths}
    ours = ("hxinfra", "deploys")
    graph: dict[str, set[str]] = {}
    for path in paths:
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):  # lazy imports inside functions count too
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ours:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] in ours}
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).split(".")[0] in ours
            ):
                deps.add(str(node.args[0].value))
        graph[_module(path)] = deps
    return graph


def test_the_import_graph_sees_a_module_imported_from_its_package():
    """``from hxinfra import batch`` is an import of hxinfra.batch (the loop it once hid is gone)."""
    graph = _imports()
    assert "hxinfra.batch" in graph["hxinfra.ops.configset"]
    assert not any(m.startswith("hxinfra.ops") for m in graph["hxinfra.batch"])


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


def test_site_calls_every_component_in_registry_order_each_from_its_own_line(monkeypatch):
    """pyinfra orders operations by the line numbers of their call stack (its own function reads
    them here): each component must be called from a line of its own, growing with the registry's
    order, so that a later component whose operations sit on lower lines of its file still sorts
    after every earlier one (a plain loop would interleave them)."""
    from types import SimpleNamespace

    from pyinfra.api.util import get_operation_order_from_stack

    import deploys.site as site_module

    state = SimpleNamespace(current_deploy_filename=site_module.__file__, current_op_file_number=0)
    seen: list[tuple[list[int], str]] = []

    def fake_apply(name: str) -> None:  # the op of a later component sits on a lower line of its file
        order = get_operation_order_from_stack(state)
        seen.append(([*order, 1000 - COMPONENTS.index(name)], name))

    monkeypatch.setattr(site_module, "_apply", fake_apply)
    site_module.site.__wrapped__()  # the body, without pyinfra's @deploy wrapper (it needs a running state)
    assert [name for _, name in seen] == list(COMPONENTS)
    assert [name for _, name in sorted(seen)] == list(COMPONENTS)
    assert len({tuple(order) for order, _ in seen}) == len(COMPONENTS)


def _named(path, others: dict[str, tuple[str, set[int]]]) -> list[str]:
    """What a file's code (not its docstrings or comments) names of ``others``: a component's name,
    its key prefix, its package, or one of its default ports."""
    tree = ast.parse(path.read_text())
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        words: list[str] = []  # a string names a component by its name; code by its keys and package
        text = isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
        if text:
            words = [node.value]
        elif isinstance(node, ast.Name | ast.alias):
            words = [node.id if isinstance(node, ast.Name) else node.name]
        elif isinstance(node, ast.ImportFrom) and node.module:
            words = [node.module]
        for name, (prefix, ports) in others.items():
            if any((text and w == name) or prefix in w or f"deploys.{name}" in w for w in words):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
            if isinstance(node, ast.Constant) and type(node.value) is int and node.value in ports:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: port {node.value} of {name}")
    return found


def _ports(contract: Component) -> set[int]:
    out: set[int] = set()
    for key, value in contract.defaults.items():
        if key.endswith("_port") and isinstance(value, int):
            out.add(value)
        elif key.endswith("_ports") and isinstance(value, dict):
            out |= {v for v in value.values() if isinstance(v, int)}
    # below 1024 a port is its protocol's (80, 443) and too common a number (widths, sizes) to tell
    return {p for p in out if p >= 1024}


# the engine's own verbs that share a word with a component (hxinfra backup drives what the backup
# component installs, through its declared program)
ENGINE_WORDS = {"backup"}


def test_the_engine_the_firewall_and_the_backup_name_no_component():
    """They collect what components declare (openings, backups, certificates, health, audit, the
    Ansible variables): a new component needs no edit in them."""
    contracts = {name: component(name)[0] for name in (*COMPONENTS, *OPERATIONS)}
    everyone = {n: (f"{n}_", _ports(c)) for n, c in contracts.items()}
    found = []
    for path in ROOT.glob("hxinfra/**/*.py"):
        found += _named(path, {n: v for n, v in everyone.items() if n not in ENGINE_WORDS})
    for own in ("firewall", "backup"):
        for path in (ROOT / "deploys" / own).glob("*.py"):
            found += _named(path, {n: v for n, v in everyone.items() if n != own})
    assert found == []


def test_no_module_of_the_engine_or_the_deploys_is_over_600_lines():
    """A module holds one purpose (the engine's ops/, inventory/, secrets/ are packages for that):
    past 600 lines it is split by purpose, not left to grow."""
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
        for base in ("hxinfra", "deploys")
        for p in (ROOT / base).rglob("*.py")
    }
    assert len(sizes) > 50
    assert {p: n for p, n in sizes.items() if n > 600} == {}
