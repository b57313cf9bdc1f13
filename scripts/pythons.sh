#!/usr/bin/env bash
# The CPythons from 3.11 up on this machine, one per minor version, newest first:
#   3.13.0 /usr/bin/python3.13
# Looks for python3.N and python3 on the PATH, then pyenv's versions (installed, even
# when not activated). Each candidate is run: shims that cannot start are skipped.
# The Makefile takes the first line's interpreter when PYTHON is not set.
set -euo pipefail

candidates=()
for minor in $(seq 40 -1 11); do
  path=$(command -v "python3.$minor" 2>/dev/null) && candidates+=("$path")
done
path=$(command -v python3 2>/dev/null) && candidates+=("$path")
for path in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/*/bin/python3; do
  [[ -x $path ]] && candidates+=("$path")
done

probe='import platform, sys
if platform.python_implementation() == "CPython" and sys.version_info >= (3, 11):
    print("%d.%d.%d" % sys.version_info[:3])'
declare -A seen=()
found=()
for path in ${candidates[@]+"${candidates[@]}"}; do
  version=$("$path" -c "$probe" 2>/dev/null) || continue
  [[ -n $version ]] || continue
  minor=${version%.*}
  [[ -z ${seen[$minor]:-} ]] || continue
  seen[$minor]=1
  found+=("$version $path")
done
((${#found[@]})) || exit 0
printf '%s\n' "${found[@]}" | sort -t. -k1,1nr -k2,2nr -k3,3nr
