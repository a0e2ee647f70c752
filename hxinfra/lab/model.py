"""The lab's model upstream: a small OpenAI-compatible stand-in on loopback of the lab's API hosts.

Lab hosts have no route to a real model provider, so ``lab up`` starts this server on
127.0.0.1:8000 of each API host, as a systemd unit (``hx-lab-model.service``); the gateway the
deploys install talks to it like to any OpenAI endpoint. It is lab furniture, made by the lab and
never by an environment's data: its answer says so.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from hxinfra.errors import LabError
from hxinfra.lab.core import Lab

PORT = 8000
UNIT = "hx-lab-model.service"
SCRIPT = "/usr/local/lib/hx-lab/model_stub.py"

_SERVER = Path(__file__).with_name("model_stub.py")

_UNIT = f"""\
[Unit]
Description=hxinfra lab: OpenAI-compatible model stand-in on 127.0.0.1:{PORT}

[Service]
ExecStart=/usr/bin/python3 {SCRIPT} {PORT}
DynamicUser=yes
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""


def start_model_stub(lab: Lab, name: str) -> None:
    """Install and start the stand-in on lab host ``name`` (idempotent)."""
    q = shlex.quote
    script = (
        "{ dpkg -s python3 >/dev/null 2>&1 || { apt-get update -qq </dev/null && DEBIAN_FRONTEND=noninteractive "
        "apt-get install -y -qq python3 >/dev/null </dev/null; }; } && "
        f"install -d /usr/local/lib/hx-lab && cat > {SCRIPT} && "
        f"printf '%s' {q(_UNIT)} > /etc/systemd/system/{UNIT} && systemctl daemon-reload && "
        f"systemctl enable --now {UNIT} >/dev/null 2>&1 && systemctl restart {UNIT}"
    )
    r = lab.ssh(name, script, timeout=600, input=_SERVER.read_text())
    if r.returncode != 0:
        raise LabError(f"{name}: the model stand-in did not start: {r.stderr[-500:]}")
