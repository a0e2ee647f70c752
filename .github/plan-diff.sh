#!/usr/bin/env bash
# Offline plan diff of every environment between BASE (a commit) and the working tree.
# Usage: .github/plan-diff.sh BASE_COMMIT OUT.md   (each side planned with its own code)
set -euo pipefail
base=$1 out=$2
envs="production staging development testing"
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# each side installs as its own tree says: from its uv.lock (hashes checked), or, for a base older
# than the lock, with pip
install() {  # install TREE VENV
  if [ -f "$1/uv.lock" ]; then make -s -C "$1" venv VENV="$2"; else python3 -m venv "$2" && "$2/bin/pip" install -q -e "$1"; fi
}
install "$PWD" "$work/head-venv"
git worktree add --detach "$work/base" "$base" >/dev/null
base_has_plan=0
if install "$work/base" "$work/base-venv" && (cd "$work/base" && "$work/base-venv/bin/hxinfra" plan --help >/dev/null 2>&1); then
  base_has_plan=1
fi

{
  echo "## hxinfra plan: what this pull request changes on the hosts"
  for env in $envs; do
    mkdir -p "$work/plans/$env"
    if [ "$base_has_plan" = 1 ]; then
      (cd "$work/base" && HXINFRA_PROJECT="$work/base" "$work/base-venv/bin/hxinfra" plan --env "$env" --out "$work/plans/$env/base") 2>/dev/null
    else
      mkdir -p "$work/plans/$env/base"  # first plan: everything is new
    fi
    set +e
    HXINFRA_PROJECT="$PWD" "$work/head-venv/bin/hxinfra" plan --env "$env" --against "$work/plans/$env/base" \
      --detailed-exitcode > "$work/plans/$env.diff" 2>/dev/null
    rc=$?
    set -e
    case $rc in
      0) echo "### $env: no changes" ;;
      2) echo "### $env: $(grep -c '^+++ ' "$work/plans/$env.diff") file(s) change"
         echo '<details><summary>diff</summary>'; echo; echo '```diff'; head -c 60000 "$work/plans/$env.diff"; echo '```'; echo '</details>' ;;
      *) echo "### $env: the plan FAILED (run: hxinfra plan --env $env --out /tmp/plan)"; exit 1 ;;
    esac
  done
} > "$out"
cat "$out"
