"""One pyinfra run through pyinfra's API, its outcome read back as objects.

The runner (:mod:`hxinfra.runner`) decides what runs where (validation, the guard, ``--serial``
batches); this module runs one batch: a :class:`pyinfra.api.State` over an inventory built from
the loaded :class:`~hxinfra.inventory.Environment`, ``connect_all``, the deploy prepared on every
host in parallel, ``run_ops``, and each host's outcome read from the state's operation metadata.
Nothing of pyinfra's printed output is parsed: a connect error comes from the connect callback, a
failed operation's cause from that operation's own output, a lost link from :mod:`hxinfra.sshlink`.

Operations are identified as under the plain ``pyinfra`` command: ``pyinfra.is_cli`` is set for the
run, so an operation's identity is the line numbers of its call stack, not its position among the
host's calls (pyinfra's API mode would merge different operations of hosts that took different
branches). The plain pyinfra CLI runs the very same deploy files and inventories.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from hxinfra.errors import HxError
from hxinfra.inventory import Environment
from hxinfra.options import RunOptions
from hxinfra.outcome import DeployReport, HostReport
from hxinfra.runlog import Sink
from hxinfra.secrets import redact
from hxinfra.sshlink import watching_links

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# pyinfra's own lines for a failed host: they say that it failed, not why
GENERIC = re.compile(
    r"^(Error: executed \d+ commands?|Error: .*operation.*failed|No changes|Success|Skipped.*|Ready: .*|Connected)$"
)
# a connect error that means the host's key is unknown or changed (paramiko's words, via pyinfra)
HOST_KEY = re.compile(r"No host key for \S+ found in known_hosts|Host key for \S+ does not match")
MAX_CAUSE = 300


def patch_for_gevent() -> None:
    """Patch the standard library for gevent now, before this process opens any connection.

    pyinfra runs hosts in greenlets; its CLI patches first thing (``python -m pyinfra``), and an
    API user must too. It must not happen in the middle of a command that has already used the
    network (``pki renew`` reads the hosts' certificates, then deploys). Patching twice is a no-op.
    """
    from gevent import monkey

    monkey.patch_all()


def one_line(text: str) -> str:
    """``text`` as one cause line: secrets masked, no colour, no newline, at most 300 characters."""
    line = " ".join(redact(ANSI.sub("", text)).split())
    return line if len(line) <= MAX_CAUSE else line[: MAX_CAUSE - 3] + "..."


def cause_from_output(stderr: Sequence[str], stdout: Sequence[str] = ()) -> str:
    """Why a failed operation failed, from its own output: hxinfra's last own line (a validation
    that restored the previous config, a refused write), else the last line it wrote to stderr,
    else to stdout."""
    lines = [ANSI.sub("", line).strip() for line in (*stdout, *stderr)]
    own = [line for line in lines if line.startswith("hxinfra:")]
    errors = [s for line in stderr if (s := ANSI.sub("", line).strip())]
    plain = [line for line in lines if line]
    return one_line((own or errors or plain or [""])[-1])


@dataclass
class _Watch:
    """What pyinfra's callbacks and logger said of each host during one run (objects, by host name)."""

    connect_errors: dict[str, str] = field(default_factory=dict)
    failed_ops: dict[str, list[str]] = field(default_factory=dict)  # host -> op hashes, in order
    logged: dict[str, list[str]] = field(default_factory=dict)  # host -> its warning/error records
    refused: dict[str, str] = field(default_factory=dict)  # host -> an operation's refusal in Prepare

    def callbacks(self) -> Any:
        from pyinfra.api.state import BaseStateCallback

        watch = self

        class Callback(BaseStateCallback):
            @staticmethod
            def host_connect_error(state: Any, host: Any, error: Any) -> None:
                watch.connect_errors[host.name] = str(error.args[0] if error.args else error)

            @staticmethod
            def operation_host_error(state: Any, host: Any, op_hash: Any, *args: Any) -> None:
                watch.failed_ops.setdefault(host.name, []).append(op_hash)

        return Callback()


class _Console(logging.Handler):
    """pyinfra's log records on their way to the run's log: formatted as its CLI formats them,
    secrets redacted; a warning or error logged with a host's prefix is kept for that host (the
    cause of a failure that left no command output, a Python callback that raised)."""

    def __init__(self, out: _Output, hosts: Sequence[Any], watch: _Watch) -> None:
        super().__init__(logging.DEBUG)
        self.out, self.watch, self.after_header = out, watch, True
        self.prefixes = [(h.name, f"[{h.name}]") for h in hosts]  # then padding: strip() takes it

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad log call must not end the run
            message = str(record.msg)
        plain = ANSI.sub("", message)
        if record.levelno >= logging.WARNING:
            for name, prefix in self.prefixes:
                if plain.startswith(prefix):
                    self.watch.logged.setdefault(name, []).append(plain[len(prefix) :].strip())
                    break
        header = "-->" in plain
        if header and not self.after_header:
            self.out.write("\n")
        self.after_header = header
        click.echo(message if header else f"    {message}", file=self.out)  # type: ignore[arg-type]  # a text stream, as click needs


def stack_order(state: Any) -> list[int]:
    """An operation's identity under the plain ``pyinfra`` command, as pyinfra's own
    ``get_operation_order_from_stack`` computes it (the line numbers of the call stack from the
    deploy file inward, pyinfra's own frames left out), read from the frames themselves.

    pyinfra's function asks :func:`inspect.stack` for every frame's source context, which reads and
    searches the source files: half the controller's time of a site no-op went there (514 calls, 14,210
    frame lookups). The answer is the same list; a unit test holds the two to it.
    """
    import pyinfra
    from pyinfra.api.util import PYINFRA_INSTALL_DIR

    frames = []
    frame = sys._getframe(1)  # the caller: this function's own frame is not pyinfra's and is left out
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back  # type: ignore[assignment]
    frames.reverse()
    start = 0
    if state.current_deploy_filename:
        # as pyinfra's loop: the first frame of the deploy file, else (no break) the innermost one,
        # which is pyinfra's own function and left out: no frame
        start = next(
            (i for i, f in enumerate(frames) if f.f_code.co_filename == state.current_deploy_filename),
            len(frames),
        )
    numbers = [state.current_op_file_number] if pyinfra.is_cli else []
    numbers += [f.f_lineno for f in frames[start:] if not f.f_code.co_filename.startswith(PYINFRA_INSTALL_DIR)]
    return numbers


class _Output(io.TextIOBase):
    """Text on its way to ``log``: whole lines, secrets redacted."""

    def __init__(self, log: Sink) -> None:
        self.log, self.pending = log, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.log.write(redact(line + "\n"))
        if lines:
            self.log.flush()
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.write("\n")


def inventory_of(env: Environment) -> Any:
    """The pyinfra inventory of an environment: what its inventory file exports, read as pyinfra's
    CLI reads a Python inventory (its module-level groups, plus a group named after the file)."""
    from pyinfra.api import Inventory

    groups = {
        name: value if isinstance(value, tuple) else (value, {})
        for name, value in env.pyinfra_groups().items()
        if isinstance(value, (list, tuple))
    }
    every = groups.pop("all")
    file_group = Path(env.file).stem
    groups.setdefault(file_group, ([name for name, _data in every[0]], {}))
    return Inventory(every, **groups)  # type: ignore[no-untyped-call]  # pyinfra's


def _deploy_callable(target: str) -> Callable[[], Any]:
    """What one host runs: a deploy file executed as pyinfra executes it (only ``__file__`` set, so
    it knows it is a file), or a ``module.function`` deploy called."""
    if target.endswith(".py"):
        code = compile(Path(target).read_text(encoding="utf-8"), target, "exec")
        return lambda: exec(code, {"__file__": target})  # noqa: S102 - deploy files are Python by design
    module, _, attr = target.rpartition(".")
    try:
        func = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise HxError(f"cannot load the deploy {target}: {type(e).__name__}: {e}") from None
    return lambda: func()


class _HeldKeys:
    """A host's data as :func:`pyinfra.api.arguments.pop_global_arguments` reads it: a key that no
    layer holds is missing at once, any other is the host's own lookup. pyinfra's ``HostData`` looks
    each of the 22 global arguments up through every layer (override, host, groups merged anew,
    inventory, deploy defaults), raising a KeyError per layer: 22,000 lookups in a site no-op, the
    largest part of its controller CPU after the stack walk. Here the layers are read once a call."""

    __slots__ = ("_data", "_layers")

    def __init__(self, data: Any) -> None:
        from pyinfra.api.host import extract_callable_datas

        self._data = data
        self._layers = list(extract_callable_datas(data.datas))

    def __getattr__(self, key: str) -> Any:
        if not any(key in layer for layer in self._layers):
            raise AttributeError(key)
        return getattr(self._data, key)


class _ArgumentsHost:
    """The host, as pop_global_arguments sees it: its data through :class:`_HeldKeys`."""

    __slots__ = ("_host", "data")

    def __init__(self, host: Any) -> None:
        self._host = host
        self.data = _HeldKeys(host.data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)


def _faster_pyinfra() -> list[tuple[Any, str, Any]]:
    """Three of pyinfra's helpers replaced for the run by ones that give the same answers at a
    fraction of the cost (the site no-op's controller time: 4.0 s of CPU before, 1.1 s after with
    the rest of this stop's work); returns what to put back.

    - ``get_operation_order_from_stack``, which every operation call runs: :func:`stack_order`.
    - ``all_global_arguments``, which every operation call and fact read runs: it asks
      :func:`typing.get_type_hints` of pyinfra's static ``AllArguments`` class each time; here
      once, a fresh list every call as before.
    - ``pop_global_arguments`` (every operation call, deploy call and fact read): pyinfra's own,
      given the host's data through :class:`_HeldKeys`.
    """
    operation = importlib.import_module("pyinfra.api.operation")  # the module (pyinfra.api.operation is its decorator)
    arguments = importlib.import_module("pyinfra.api.arguments")
    facts = importlib.import_module("pyinfra.api.facts")
    deploy = importlib.import_module("pyinfra.api.deploy")
    hints = arguments.all_global_arguments()
    pop = arguments.pop_global_arguments

    def all_global_arguments() -> list[tuple[str, type]]:
        return list(hints)

    def pop_global_arguments(state: Any, host: Any, kwargs: dict[str, Any]) -> Any:
        return pop(state, _ArgumentsHost(host), kwargs)

    replaced = []
    for module, name, new in [
        (operation, "get_operation_order_from_stack", stack_order),
        (arguments, "all_global_arguments", all_global_arguments),
        (facts, "all_global_arguments", all_global_arguments),
        (operation, "pop_global_arguments", pop_global_arguments),
        (facts, "pop_global_arguments", pop_global_arguments),
        (deploy, "pop_global_arguments", pop_global_arguments),
    ]:
        replaced.append((module, name, getattr(module, name)))
        setattr(module, name, new)
    return replaced


@contextlib.contextmanager
def _process_state(root: Path, out: _Output, hosts: Sequence[Any], watch: _Watch) -> Iterator[None]:
    """What ``python -m pyinfra`` sets up for itself, set up for one run and put back after: CLI
    operation identity, the project root as working directory and import root, pyinfra's logger
    on its way to the run's log."""
    import pyinfra
    from pyinfra import logger
    from pyinfra.api.output import set_echo, set_formatter

    cwd, path, was_cli = os.getcwd(), list(sys.path), pyinfra.is_cli
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    replaced = _faster_pyinfra()
    pyinfra.is_cli = True
    set_formatter(click.style)
    set_echo(click.echo)
    logger.handlers[:] = [_Console(out, hosts, watch)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    os.chdir(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        for module, name, original in replaced:
            setattr(module, name, original)
        pyinfra.is_cli = was_cli


def _prepare(state: Any, run: Callable[[], Any], label: str, watch: _Watch) -> dict[str, str]:
    """Prepare the deploy on every connected host in parallel (pyinfra's Prepare stage: facts
    gathered, operations collected, changes detected). Returns the hosts whose preparation raised,
    each with its one-line cause.

    An operation's own refusal (pyinfra's ``OperationError``: this host cannot be brought to the
    state asked, e.g. its domain controllers do not answer) fails that host alone, as it does when
    the operation runs: it goes to ``watch.refused`` and the other hosts go on."""
    import gevent
    from pyinfra import logger
    from pyinfra.api.exceptions import OperationError
    from pyinfra.context import ctx_config, ctx_host

    def load(host: Any) -> str | None:
        try:
            with ctx_config.use(state.config.copy()), ctx_host.use(host):
                run()
            logger.info(f"{host.print_prefix}{click.style('Ready:', 'green')} {click.style(label, bold=True)}")
        except OperationError as e:  # the words a run's failing command says too (hxinfra.ops.refusal)
            watch.refused[host.name] = one_line(f"hxinfra: {e}")
            logger.error(f"{host.print_prefix}{click.style(watch.refused[host.name], 'red')}")
        except Exception as e:  # noqa: BLE001 - the deploy's own error, reported as the host's cause
            return f"{type(e).__name__}: {e}"
        return None

    spawned = {state.pool.spawn(load, host): host for host in state.inventory.get_active_hosts()}
    gevent.joinall(list(spawned))
    refused = [host for host in spawned.values() if host.name in watch.refused]
    if refused:
        state.fail_hosts(set(refused))
    return {host.name: one_line(msg) for g, host in spawned.items() if (msg := g.get())}


def run_batch(
    root: Path, env: Environment, target: str, hosts: list[str], options: RunOptions, log: Sink
) -> DeployReport:
    """Run deploy ``target`` (a deploy file or ``module.function``) on exactly ``hosts`` of ``env``.

    ``env`` is the validated environment with its vault values open; check mode detects changes
    and runs nothing, a run skips change detection (as ``pyinfra -y``). Every host of ``hosts``
    is in the report: changed, ok, pending, failed or unreachable, each failure with its cause.
    """
    from pyinfra.api import Config, State
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import StateStage
    from pyinfra.context import ctx_config, ctx_inventory, ctx_state

    inventory = inventory_of(env)
    selected = [inventory.get_host(name) for name in hosts]
    state = State(check_for_changes=options.check)
    state.cwd = str(root)
    state.print_fact_info = state.print_noop_info = options.verbosity > 0
    state.print_input = state.print_fact_input = options.verbosity > 1
    state.print_output = state.print_fact_output = options.verbosity > 2
    config = Config()  # type: ignore[no-untyped-call]  # pyinfra's
    config.DIFF = bool(options.diff)
    config.lock_current_state()
    watch = _Watch()
    out = _Output(log)
    raised: dict[str, str] = {}
    label = Path(target).name if target.endswith(".py") else target
    stopped = ""  # pyinfra's own reason to stop the run (every host failed)
    with (
        _process_state(root, out, selected, watch),
        ctx_state.use(state),
        ctx_inventory.use(inventory),
        ctx_config.use(config),
        watching_links() as links,  # a host that stops answering is lost in seconds, not minutes
        contextlib.redirect_stdout(out),  # a deploy's print() is log text, never the CLI's JSON
        contextlib.redirect_stderr(out),
    ):
        state.init(inventory, config, initial_limit=selected)
        state.add_callback_handler(watch.callbacks())  # type: ignore[no-untyped-call]  # pyinfra's
        try:
            state.set_stage(StateStage.Connect)
            connect_all(state)
            state.set_stage(StateStage.Prepare)
            state.current_deploy_filename = target if target.endswith(".py") else None
            state.current_exec_filename = target if target.endswith(".py") else None
            state.current_op_file_number = 0
            raised = _prepare(state, _deploy_callable(target), label, watch)
            config.reset_locked_state()
            if raised:  # as pyinfra's CLI: a deploy that raised on a host runs nowhere
                for name, cause in raised.items():
                    log.write(redact(f"hxinfra: {name}: the deploy raised: {cause}\n"))
            elif not options.check:
                state.set_stage(StateStage.Execute)
                run_ops(state)
        except PyinfraError as e:
            stopped = str(e)
        finally:
            state.set_stage(StateStage.Disconnect)
            with contextlib.suppress(Exception):  # a dead link has nothing left to close
                disconnect_all(state)
            out.flush()
    return _report(state, hosts, options.check, watch, links, raised, stopped, log)


def _op_name(meta: Any) -> str:
    """An operation's name as pyinfra prints it: its name, then its arguments."""
    name = sorted(meta.names)[0] if meta.names else "Operation"
    return f"{name} ({', '.join(str(a) for a in meta.args)})" if meta.args else name


def _report(  # noqa: C901 - one branch per kind of host outcome
    state: Any,
    hosts: list[str],
    check: bool,
    watch: _Watch,
    links: Any,
    raised: dict[str, str],
    stopped: str,
    log: Sink,
) -> DeployReport:
    """Each host's outcome, read from the state after the run."""
    report = DeployReport(0, check, {h: HostReport(h) for h in hosts})
    activated = {h.name: h for h in state.activated_hosts}
    ran = not raised and not check and bool(activated)
    for op_hash in state.get_op_order():
        name = _op_name(state.get_op_meta(op_hash))
        on = [(h, state.ops[h][op_hash]) for h in activated.values() if op_hash in state.ops[h]]
        if check and not raised:  # what would change: detected in Prepare (not counted: an _if's)
            changes = sorted(
                h.name for h, data in on if not data.global_arguments["_if"] and data.operation_meta.will_change
            )
            report.operations.append({"name": name, "changes": changes})
            for host_name in changes:
                if host_name in watch.refused:  # failed: what it would change is not known
                    continue
                report.hosts[host_name].changed += 1
                report.hosts[host_name].changes.append(name)
            continue
        if not ran:
            continue
        outcome: dict[str, list[str]] = {"changed": [], "ok": [], "failed": []}
        for h, data in on:
            meta = data.operation_meta
            if not (meta.is_complete() and meta.did_succeed()):
                kind = "failed"  # as pyinfra counts it: an operation a failed host never reached too
            else:
                kind = "changed" if meta.did_change() else "ok"
            outcome[kind].append(h.name)
            hr = report.hosts[h.name]
            setattr(hr, kind, getattr(hr, kind) + 1)
            if kind == "changed":
                hr.changes.append(name)
        report.operations.append({"name": name, **{k: sorted(v) for k, v in outcome.items()}})
    own: dict[str, str] = {}  # hxinfra's own word on a host: its cause
    lost = links.lost() & set(hosts)
    for name in sorted(lost):
        own[name] = (
            f"hxinfra: {name}: connection lost during the run (no answer for {links.seconds} s): unreachable; "
            "the other hosts went on. Run again once it answers"
        )
    for name, error in sorted(watch.connect_errors.items()):
        if name in report.hosts and HOST_KEY.search(error):
            own[name] = (
                f"hxinfra: {name}: its SSH host key is unknown or changed: unreachable. Check the key with "
                f"`hxinfra known-hosts scan --env ENV --limit {name}` and record it if it is right"
            )
    for message in own.values():
        log.write(message + "\n")
    failed_hosts = {h.name for h in state.failed_hosts}
    for hr in report.hosts.values():
        if hr.name not in activated or hr.name in lost:
            hr.status = "unreachable"
            hr.cause = own.get(hr.name) or one_line(watch.connect_errors.get(hr.name, "could not connect"))
            continue
        if raised:
            hr.status = "failed"
            hr.cause = raised.get(hr.name) or f"not run: the deploy raised on {', '.join(sorted(raised))}"
        elif check:
            hr.status = "failed" if hr.name in failed_hosts else ("pending" if hr.changed else "ok")
        else:
            hr.status = "failed" if hr.failed or hr.name in failed_hosts else ("changed" if hr.changed else "ok")
        if hr.status == "failed" and not hr.cause:
            hr.cause = watch.refused.get(hr.name) or _cause(state, activated[hr.name], watch) or one_line(stopped)
    bad = ("failed", "unreachable")
    report.returncode = 1 if stopped or raised or any(h.status in bad for h in report.hosts.values()) else 0
    return report


def _cause(state: Any, host: Any, watch: _Watch) -> str:
    """The one line that says why a connected host failed: its failed operation's own output,
    else the last thing pyinfra logged against it that is not its generic "Error: executed N
    commands"."""
    for op_hash in reversed(watch.failed_ops.get(host.name, [])):
        meta = state.ops[host][op_hash].operation_meta
        if meta.is_complete():
            cause = cause_from_output(meta.stderr_lines, meta.stdout_lines)
            if cause:
                return cause
    logged = [line for line in watch.logged.get(host.name, []) if line and not GENERIC.match(line)]
    return one_line(logged[-1]) if logged else ""
