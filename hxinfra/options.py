"""The options of one run, typed and built once.

``hxinfra deploy`` reads its command line into one :class:`RunOptions`: tags, skip-tags, extra vars,
check, diff, limit, serial, shard. The runner hands that object on as it is: the extra vars and the
tag selection become the top data layer of the environment (one dict, no re-encoding), and the deploys
read the selection back from host data with :func:`selection_of`, which is also how the plain pyinfra CLI
selects steps (``pyinfra INVENTORY deploys/site.py --data hx_tags=config``). So there is one rule for
which step runs, :meth:`TagSelection.runs`, whichever door a run came in by.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hxinfra.datafiles import absolute_extra_vars, parse_extra_vars
from hxinfra.errors import HxError
from hxinfra.frozen import FrozenDict, freeze_values
from hxinfra.patterns import parse_serial, parse_shard

TAGS_KEY = "hx_tags"
SKIP_TAGS_KEY = "hx_skip_tags"


def split_tags(values: Any) -> tuple[str, ...]:
    """``("a,b", "c")``, ``"a,b"`` or ``["a", "b"]`` -> ``("a", "b", "c")``: the forms a tag list comes in
    (repeated ``--tags``, a comma list from pyinfra's ``--data``, a YAML list), in order, once each."""
    if not values:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    out: dict[str, None] = {}
    for item in items:
        for tag in str(item).split(","):
            if tag.strip():
                out[tag.strip()] = None
    return tuple(out)


@dataclass(frozen=True)
class TagSelection:
    """``--tags``/``--skip-tags`` with Ansible's rules: a skipped tag wins; no tags, or ``all``, selects
    every step; a step tagged ``always`` runs unless one of its tags is skipped."""

    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()

    def runs(self, step_tags: Iterable[str]) -> bool:
        """Whether a step carrying ``step_tags`` (its component's name among them) runs."""
        tags = set(step_tags)
        if tags & self.skip_tags:
            return False
        if not self.tags or "all" in self.tags or "always" in tags:
            return True
        return bool(tags & self.tags)

    def unknown(self, known: Iterable[str]) -> list[str]:
        """The selected or skipped tags no component declares (besides ``all`` and ``always``)."""
        return sorted((self.tags | self.skip_tags) - set(known) - {"all", "always"})


# the seed guide's playbooks ran on ``hosts: "{{ target_hosts }}"``: -e target_hosts=P selects like --limit P
TARGET_KEY = "target_hosts"


def target_limit(target: Any, limit: tuple[str, ...]) -> tuple[str, ...]:
    """The host patterns of a run given ``-e target_hosts=P`` and ``--limit``: P alone, or, with both,
    the hosts of P that ``--limit`` also selects (as a play's hosts narrowed by ``--limit``)."""
    if target is None or target == "":
        return limit
    if isinstance(target, list | tuple):
        target = ",".join(str(t) for t in target)
    if not isinstance(target, str) or any(c in target for c in "\n\r\0"):
        raise HxError(f"-e {TARGET_KEY}: a host pattern (one line)")
    if not limit:
        return (target,)
    return tuple(f"{target}:&{p}" for p in limit)


def selection_of(data: Mapping[str, Any]) -> TagSelection:
    """The tag selection that host data carries (``hx_tags``/``hx_skip_tags``: set by ``hxinfra deploy``
    as lists, or by pyinfra's ``--data hx_tags=a,b`` as a comma list)."""
    get = data.get
    return TagSelection(frozenset(split_tags(get(TAGS_KEY))), frozenset(split_tags(get(SKIP_TAGS_KEY))))


@dataclass(frozen=True)
class RunOptions:
    """What one run was asked to do. Built once (:meth:`from_cli`), passed as it is."""

    check: bool = False
    diff: bool = False
    limit: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    extra_vars: FrozenDict = field(default_factory=FrozenDict)
    serial: tuple[str, ...] = ()  # batch sizes, validated: ("1", "5", "25%")
    shard: tuple[int, int] | None = None  # (k, n): shard k of n
    max_fail_percentage: float = 0.0
    verbosity: int = 0

    @classmethod
    def from_cli(
        cls,
        *,
        extra_args: Sequence[str] = (),
        tags: Iterable[str] = (),
        skip_tags: Iterable[str] = (),
        limit: Iterable[str] = (),
        serial: str | None = None,
        shard: str | None = None,
        check: bool = False,
        diff: bool = False,
        max_fail_percentage: float = 0.0,
        verbosity: int = 0,
    ) -> RunOptions:
        """Options from command-line words: ``-e`` parsed here, once (``@file`` paths made absolute
        first, vault files opened with this process's passwords), tags split at commas, serial and
        shard checked. A bad word is a usage error before anything is loaded or connected."""
        for name in ("tags", "skip_tags"):
            given = tags if name == "tags" else skip_tags
            if isinstance(given, str):
                raise TypeError(f"{name}: give a sequence of words, not one string")
        extra = parse_extra_vars(absolute_extra_vars(extra_args))
        return cls(
            check=check,
            diff=diff,
            limit=target_limit(extra.pop(TARGET_KEY, None), tuple(limit)),
            tags=split_tags(tags),
            skip_tags=split_tags(skip_tags),
            extra_vars=freeze_values(extra),
            serial=tuple(parse_serial(serial)),
            shard=parse_shard(shard),
            max_fail_percentage=max_fail_percentage,
            verbosity=verbosity,
        )

    @property
    def selection(self) -> TagSelection:
        return TagSelection(frozenset(self.tags), frozenset(self.skip_tags))

    @property
    def shard_label(self) -> str | None:
        return f"{self.shard[0]}/{self.shard[1]}" if self.shard else None

    def data_layer(self) -> dict[str, Any]:
        """The top data layer of the run: the extra vars, and the tag selection where one was given
        (given as ``-e hx_tags=...`` too, the command-line options win)."""
        layer = dict(self.extra_vars)
        if self.tags:
            layer[TAGS_KEY] = list(self.tags)
        if self.skip_tags:
            layer[SKIP_TAGS_KEY] = list(self.skip_tags)
        return layer

    def check_tags(self, known: Iterable[str]) -> None:
        """Unknown tags are an error (a typo must not silently run nothing)."""
        known = set(known)
        unknown = self.selection.unknown(known)
        if unknown:
            raise HxError(
                f"unknown tag(s) {', '.join(unknown)} (known: {', '.join(sorted(known | {'all', 'always'}))})"
            )
