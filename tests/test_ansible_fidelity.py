"""Side by side with ansible-core: variable precedence and host order, case by case.

Each case is an Ansible inventory (YAML or INI, with group_vars and host_vars). ansible-core answers
for it in a process of its own (``tests/ansible_probe.py``); hxinfra imports the same inventory
(``hxinfra import-ansible``) and must give the same variable to every host, the same hosts of
``all`` in the same order, and the same hosts for every ``--limit`` (subscripts included).

Ansible's order is not always one order: where several groups of one level below ``all`` have
children with hosts of their own, ansible-core walks them in the order of a Python set, which changes
from one process to the next. Every case here has one answer (asked under several hash seeds, they
must agree); the order hxinfra gives where ansible-core has none is its own test below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hxinfra.cli import main
from hxinfra.errors import HxError
from hxinfra.inventory import load_environment
from hxinfra.patterns import select

PROBE = Path(__file__).with_name("ansible_probe.py")
SEEDS = ("0", "1", "2", "3")

# name: (files of the Ansible inventory, limits to compare, -e extra vars)
CASES: dict[str, tuple[dict[str, str], list[str], dict[str, str]]] = {
    # ---------------------------------------------------------------- precedence
    "child group file over its parent's": (
        {
            "hosts.yml": """\
            all:
              children:
                web_servers:
                  hosts: {w1: , w2: }
                  children:
                    canary: {hosts: {w1: }}
            """,
            "group_vars/web_servers.yml": "probe: parent\n",
            "group_vars/canary.yml": "probe: child\n",
        },
        [],
        {},
    ),
    "child group inline vars over its parent's": (
        {
            "hosts.yml": """\
            all:
              children:
                web_servers:
                  vars: {probe: parent}
                  hosts: {w1: , w2: }
                  children:
                    canary: {hosts: {w1: }, vars: {probe: child}}
            """,
        },
        [],
        {},
    ),
    "a child listed before its parent still wins": (
        {
            "hosts.yml": """\
            canary:
              hosts: {w1: }
              vars: {probe: child}
            web_servers:
              vars: {probe: parent}
              children:
                canary:
              hosts: {w2: }
            """,
        },
        [],
        {},
    ),
    "deeper group over a shallower one whose name sorts later": (
        {
            "hosts.yml": """\
            all:
              children:
                zz: {hosts: {h1: , h2: }}
                mid:
                  children:
                    aa: {hosts: {h1: }}
            """,
            "group_vars/zz.yml": "probe: zz\n",
            "group_vars/aa.yml": "probe: aa\n",
            "group_vars/mid.yml": "probe: mid\n",
        },
        [],
        {},
    ),
    "depth is the longest path from all": (
        {
            "hosts.yml": """\
            all:
              children:
                top:
                  children:
                    mid:
                      children:
                        x: {hosts: {h1: }}
                    x:
                other:
                  children:
                    y: {hosts: {h1: }}
            """,
            "group_vars/x.yml": "probe: x\n",
            "group_vars/y.yml": "probe: y\n",
        },
        [],
        {},
    ),
    "ansible_group_priority in the inventory raises a sibling": (
        {
            "hosts.yml": """\
            all:
              children:
                a: {hosts: {h1: }, vars: {probe: a, ansible_group_priority: 10}}
                b: {hosts: {h1: , h2: }, vars: {probe: b}}
            """,
        },
        [],
        {},
    ),
    "ansible_group_priority raises a group's files too": (
        {
            "hosts.ini": """\
            [a]
            h1
            [b]
            h1
            [a:vars]
            ansible_group_priority=5
            """,
            "group_vars/a.yml": "probe: a\n",
            "group_vars/b.yml": "probe: b\n",
        },
        [],
        {},
    ),
    "ansible_group_priority in group_vars is not read (as Ansible)": (
        {
            "hosts.yml": "all:\n  children:\n    a: {hosts: {h1: }}\n    b: {hosts: {h1: }}\n",
            "group_vars/a.yml": "probe: a\nansible_group_priority: 10\n",
            "group_vars/b.yml": "probe: b\n",
        },
        [],
        {},
    ),
    "priority never beats depth": (
        {
            "hosts.yml": """\
            all:
              children:
                web:
                  vars: {probe: parent, ansible_group_priority: 100}
                  children:
                    canary: {hosts: {w1: }, vars: {probe: child}}
            """,
        },
        [],
        {},
    ),
    "siblings of one depth: by name": (
        {
            "hosts.yml": "all:\n  children:\n    b: {hosts: {h1: }}\n    a: {hosts: {h1: }}\n",
            "group_vars/a.yml": "probe: a\n",
            "group_vars/b.yml": "probe: b\n",
        },
        [],
        {},
    ),
    "group_vars/all over every group's inline vars": (
        {
            "hosts.yml": "all:\n  children:\n    web: {hosts: {h1: }, vars: {probe: web-inline}}\n",
            "group_vars/all.yml": "probe: all-file\n",
        },
        [],
        {},
    ),
    "host_vars over inline host vars over group_vars": (
        {
            "hosts.yml": """\
            all:
              children:
                web: {hosts: {h1: {probe: h1-inline}, h2: {probe: h2-inline}, h3: }}
            """,
            "group_vars/web.yml": "probe: web-file\n",
            "host_vars/h1.yml": "probe: h1-file\n",
        },
        [],
        {},
    ),
    "the last inline host vars in file order win": (
        {
            "hosts.yml": """\
            all:
              children:
                web:
                  children:
                    canary: {hosts: {w1: {probe: canary}}}
                  hosts: {w1: {probe: web}}
            """,
        },
        [],
        {},
    ),
    "extra vars over everything": (
        {
            "hosts.yml": "all:\n  children:\n    web: {hosts: {h1: {probe: inline}}, vars: {probe: g}}\n",
            "host_vars/h1.yml": "probe: host-file\n",
        },
        [],
        {"probe": "cli"},
    ),
    # ---------------------------------------------------------------- host order
    "all: level by level, own hosts first": (
        {
            "hosts.yml": """\
            all:
              children:
                web:
                  children:
                    canary: {hosts: {w1: }}
                  hosts: {w2: }
                db: {hosts: {d1: }}
            """,
        },
        ["web[0]", "all[-1]", "all[0]", "web[-1]", "canary:db", "web[0:1]", "all[1:]"],
        {},
    ),
    "all: hosts of all first, then groups": (
        {
            "hosts.yml": """\
            web:
              hosts: {w1: , w2: }
            all:
              hosts: {x1: }
            """,
        },
        ["all[0]", "all[-1]", "web[1]", "ungrouped"],
        {},
    ),
    "a group's own order, not the inventory's": (
        {
            "hosts.yml": "all:\n  children:\n    a: {hosts: {h1: , h2: , h3: }}\n    b: {hosts: {h3: , h1: }}\n",
        },
        ["b[0]", "b[-1]", "b[0:1]", "a[1:]", "b:a[0]", "all[-1]"],
        {},
    ),
    "ini: ungrouped first, a host seen again leaves ungrouped": (
        {
            "hosts.ini": """\
            x1
            x2
            [web]
            w1
            x2
            [db]
            d1
            [app:children]
            web
            db
            """,
        },
        ["all[1]", "app[0]", "app[-1]", "ungrouped", "all[-1]", "x*"],
        {},
    ),
    "the guide's groups, nested": (
        {
            "hosts.yml": """\
            all:
              children:
                api_servers:
                  hosts: {hx-api-02: , hx-api-01: }
                application_servers:
                  hosts: {hx-app-01: }
                web_servers:
                  children:
                    blue: {hosts: {hx-web-02: }}
                    green: {hosts: {hx-web-01: }}
                database_servers:
                  hosts: {hx-db-02: , hx-db-01: }
                  children:
                    primary_db: {hosts: {hx-db-01: }}
            """,
            "group_vars/api_servers.yml": "probe: api\n",
            "group_vars/blue.yml": "probe: blue\n",
        },
        ["api_servers[0]", "all[-1]", "web_servers[0]", "database_servers[-1]", "~hx-(web|db)-0[12]", "all[2:4]"],
        {},
    ),
}


def ansible_answers() -> list[dict[str, Any]]:
    """ansible-core's answers for every case, under each seed (one process per seed)."""
    requests = [
        {
            "path": str(case_dir(name) / next(f for f in files if f.startswith("hosts"))),
            "limits": limits,
            "extra": extra,
        }
        for name, (files, limits, extra) in CASES.items()
    ]
    per_seed = []
    for seed in SEEDS:
        r = subprocess.run(
            [sys.executable, str(PROBE)],
            input=json.dumps(requests),
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONHASHSEED": seed, "ANSIBLE_LOCAL_TEMP": str(BASE / ".ansible")},
        )
        assert r.returncode == 0, r.stderr
        per_seed.append(json.loads(r.stdout))
    return [{"name": name, "seeds": [answers[i] for answers in per_seed]} for i, name in enumerate(CASES)]


BASE = Path()


def case_dir(name: str) -> Path:
    return BASE / "ansible" / "".join(c if c.isalnum() else "-" for c in name)


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    global BASE
    BASE = tmp_path_factory.mktemp("fidelity")
    for name, (files, _limits, _extra) in CASES.items():
        for rel, text in files.items():
            path = case_dir(name) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
    return {a["name"]: a["seeds"] for a in ansible_answers()}


def _one_of(ours: Any, theirs: list[Any], what: str) -> None:
    outcomes = {json.dumps(t) for t in theirs}
    assert len(outcomes) == 1, f"{what}: ansible-core gives no one answer for this case: {sorted(outcomes)}"
    assert json.dumps(ours) in outcomes, f"{what}: ours {ours}, ansible-core {sorted(outcomes)}"


@pytest.mark.parametrize("name", list(CASES))
def test_the_same_as_ansible_core(name: str, answers: dict[str, list[dict[str, Any]]], project: Any) -> None:
    files, limits, extra = CASES[name]
    r = CliRunner().invoke(main, ["import-ansible", str(case_dir(name)), "--env", "imported"])
    assert r.exit_code == 0, r.output
    env = load_environment(project.root / "inventories/imported.py", extra_vars=extra)
    seeds = answers[name]
    _one_of(list(env.hosts), [s["all"] for s in seeds], "hosts of all")
    for host in env.hosts:
        theirs = seeds[0]["vars"][host]["probe"]
        assert all(s["vars"][host]["probe"] == theirs for s in seeds)  # precedence is one answer
        assert env.host_data(host).get("probe") == theirs, host
    for pattern in limits:
        try:
            ours: Any = select(pattern, list(env.hosts), env.groups)
        except HxError:
            ours = "error"
        theirs_all = [s["limits"][pattern] for s in seeds]
        _one_of(ours, [t if isinstance(t, list) and t else "error" for t in theirs_all], f"--limit {pattern}")


def test_where_ansible_core_has_no_one_order_parents_keep_the_inventorys(tmp_path: Path) -> None:
    """web_servers and database_servers both have children with hosts of their own: ansible-core
    lists blue/green and primary_db in either order (a set's). hxinfra: the parents' order, always."""
    from hxinfra.ansible import hosts_of, read_inventory

    (tmp_path / "hosts.yml").write_text(
        textwrap.dedent(
            """\
            all:
              children:
                web_servers:
                  children:
                    blue: {hosts: {w1: , w2: }}
                    green: {hosts: {w3: }}
                database_servers:
                  children:
                    primary_db: {hosts: {d1: }}
            """
        )
    )
    inv = read_inventory(tmp_path / "hosts.yml")
    assert hosts_of(inv, "all") == ["w1", "w2", "w3", "d1"]
    assert hosts_of(inv, "web_servers") == ["w1", "w2", "w3"]
