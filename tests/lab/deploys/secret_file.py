"""Test deploy: one private file that carries a vaulted secret (``vault_lab_token``)."""

from pyinfra import host

from hxinfra.desired import ManagedFile
from hxinfra.ops.configset import config_set
from hxinfra.secrets import reveal

token = reveal(host.data.get("vault_lab_token"))
config_set(
    name="Upload /etc/hx-test/token.conf",
    items=[
        ManagedFile(
            "/etc/hx-test/token.conf", f"# managed by hxinfra (test)\ntoken = {token}\n", mode="0640", group="adm"
        )
    ],
)
