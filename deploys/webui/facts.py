"""What a web UI host holds: which colour serves, each colour's release, and the releases on disk."""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra.api import FactBase
from typing_extensions import override


class WebuiState(FactBase[dict[str, Any]]):
    """``{active, slots: {colour: version}, releases: {version: mtime}}`` in one round trip."""

    default = dict

    @override
    def command(self, directory: str) -> str:
        d = shlex.quote(directory)
        return (
            f"echo active=$(cat {d}/active 2>/dev/null); "
            f'for c in blue green; do echo slot=$c=$(basename "$(readlink {d}/$c 2>/dev/null)"); done; '
            f'for r in {d}/releases/*/; do [ -d "$r" ] && echo release=$(basename "$r")=$(stat -c %Y "$r"); done; true'
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        state: dict[str, Any] = {"active": "", "slots": {}, "releases": {}}
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "active" and value in ("blue", "green"):
                state["active"] = value
            elif key == "slot":
                color, _, version = value.partition("=")
                if version:
                    state["slots"][color] = version
            elif key == "release":
                version, _, mtime = value.rpartition("=")
                if version and mtime.isdigit():
                    state["releases"][version] = int(mtime)
        return state
