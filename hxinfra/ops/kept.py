"""The previous versions ``config_set`` keeps of what it replaces (``/var/backups/hxinfra/<path>``),
with the run that replaced each, and the shell that puts them back (``restore --config``, rollbacks)."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Sequence

DEFAULT_BACKUP_DIR = "/var/backups/hxinfra"


# Beside each kept previous version: the run that replaced it, or a note that the path did not exist.
RUN_STAMP, ABSENT = ".hxinfra-run", ".hxinfra-absent"


PART = ".hxinfra-part"  # a kept version being written (see keep_previous_commands)


# One id per controller run, the same on every host and operation; sorts by time.
RUN_ID = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"


def keep_previous_commands(backups: dict[str, str], run_id: str) -> str:
    """One shell script that keeps the previous version of each path (``path -> kept copy``).

    Every kept copy, "was absent" note and run stamp is first written beside its final name
    (``.hxinfra-part``), and only when all of them are complete are they renamed into place. A
    failure half-way (a full disk) removes the parts and leaves the versions kept by the last run
    as they were: a truncated copy never takes the place of a good one, so ``restore --config``
    can always trust what it finds.
    """
    q = shlex.quote
    prepare, commit, parts = [], [], []
    for path, kept in backups.items():
        part, absent, stamp = kept + PART, kept + ABSENT + PART, kept + RUN_STAMP + PART
        parts += [part, absent, stamp]
        parent = kept.rsplit("/", 1)[0]
        prepare.append(
            f"mkdir -p {q(parent)} && rm -f {q(part)} {q(absent)} {q(stamp)} && "
            f"{{ if [ -e {q(path)} ] || [ -L {q(path)} ]; then cp -a {q(path)} {q(part)}; else : > {q(absent)}; fi; }} "
            f"&& printf '%s\\n' {q(run_id)} > {q(stamp)}"
        )
        commit.append(
            f"{{ if [ -e {q(part)} ] || [ -L {q(part)} ]; then mv -f {q(part)} {q(kept)} && rm -f {q(kept + ABSENT)}; "
            f"else rm -f {q(kept)} && mv -f {q(absent)} {q(kept + ABSENT)}; fi; }} "
            f"&& mv -f {q(stamp)} {q(kept + RUN_STAMP)}"
        )
    cleanup = "rm -f " + " ".join(q(p) for p in parts)
    return (
        f"umask 077 && out=$( {{ {' && '.join(prepare)} ; }} 2>&1 ) || {{ rc=$?; {cleanup}; "
        'printf "%s\\n" "$out" >&2; printf "hxinfra: could not keep the previous versions, nothing was changed: '
        '%s\\n" "$(printf "%s\\n" "$out" | tail -n 1)" >&2; exit $rc; }; ' + " && ".join(commit)
    )


def undo_script(
    paths: Sequence[str], validate: str, apply: str, what: str, backup_dir: str = DEFAULT_BACKUP_DIR
) -> str:
    """A shell script that puts a component's config back to its previous deployed version.

    "Previous" is exact: among ``paths``, those the component's newest change replaced (the
    newest run stamp ``config_set`` left beside the kept versions); older kept versions belong
    to earlier runs and stay. Live and kept versions are exchanged, so running it again goes
    forward again. The result is checked by ``validate`` before ``apply`` makes it live; when
    the check fails, the exchange is undone and the script fails: the service keeps its config.
    """
    q = shlex.quote
    stamps = " ".join(q(backup_dir + p + RUN_STAMP) for p in paths)
    swaps = "\n".join(f"swap {q(p)} {q(backup_dir + p)}" for p in paths)
    return f"""set -u
umask 077
newest=$(cat {stamps} 2>/dev/null | sort | tail -n1)
[ -n "$newest" ] || {{ echo "hxinfra: no previous version of {what}'s config is kept on this host" >&2; exit 1; }}
swap() {{
  p=$1; b=$2
  [ "$(cat "$b{RUN_STAMP}" 2>/dev/null)" = "$newest" ] || return 0
  rm -f "$b.hxinfra-swap"
  if [ -e "$p" ] || [ -L "$p" ]; then cp -a "$p" "$b.hxinfra-swap"; fi
  rm -f "$p"
  if [ ! -e "$b{ABSENT}" ]; then cp -a "$b" "$p"; fi
  rm -f "$b" "$b{ABSENT}"
  if [ -e "$b.hxinfra-swap" ] || [ -L "$b.hxinfra-swap" ]; then mv -f "$b.hxinfra-swap" "$b"; else : > "$b{ABSENT}"; fi
  echo "$p"
}}
swapped=$( {swaps.replace(chr(10), " ; ")} )
if ! out=$( {{ {validate} ; }} 2>&1 ); then
  {swaps.replace(chr(10), " >/dev/null ; ")} >/dev/null
  printf '%s\n' "$out" >&2
  echo "hxinfra: the previous version of {what}'s config does not validate; the current one stays" >&2
  exit 1
fi
{apply} || {{ echo "hxinfra: {what}: the previous config is in place but could not be made live" >&2; exit 1; }}
printf 'restored %s\n' $swapped
"""


def restore_commands(paths: Sequence[str], backup_dir: str = DEFAULT_BACKUP_DIR) -> str:
    """Shell that puts back the versions ``config_set`` kept of ``paths`` (removing a path that
    did not exist before)."""
    q = shlex.quote
    return " ; ".join(
        f"if [ -e {q(backup_dir + p + ABSENT)} ]; then rm -f {q(p)}; "
        f"elif [ -e {q(backup_dir + p)} ] || [ -L {q(backup_dir + p)} ]; then cp -a {q(backup_dir + p)} {q(p)}; fi"
        for p in paths
    )
