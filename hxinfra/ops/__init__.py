"""The engine's pyinfra operations, one module per domain (as pyinfra's own ``operations/``):
:mod:`~hxinfra.ops.configset` (config files as one validated transaction), :mod:`~hxinfra.ops.kept`
(the previous versions it keeps), :mod:`~hxinfra.ops.system` (units, packages, directories,
accounts, the barrier), :mod:`~hxinfra.ops.probe` (HTTP readiness), :mod:`~hxinfra.ops.python`
(virtualenvs), :mod:`~hxinfra.ops.rollback` (changes that undo themselves) and
:mod:`~hxinfra.ops.refusal` (a host that cannot be brought to the state asked fails alone)."""
