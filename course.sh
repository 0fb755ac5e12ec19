#!/usr/bin/env bash
# The course's two commands (see README.md):
#   bash course.sh lab [options]   set up .venv and open the course in JupyterLab, at the repository's root (lessons/,
#                                  exercises/, solutions/) with lesson 00 open; options go to `jupyter lab`
#                                  (bash course.sh lab --port 9999 --no-browser)
#   bash course.sh test [options]  set up .venv and run every test: ruff, unit tests, then every lesson under nbval;
#                                  options go to pytest
# Environment: MINIBERT_DATA (a local copy of the datasets; otherwise they are downloaded),
#              MINIBERT_VENV (where the virtual environment goes, default .venv),
#              MINIBERT_SKIP_INSTALL=1 (use the virtual environment as it is: no pip at all, for a machine set up
#              before and now offline, and for the tests, which start `course.sh lab` in their own environment).
set -euo pipefail
cd "$(dirname "$0")"
what=${1:-}
case "$what" in
  lab|test) ;;
  *) echo "usage: bash course.sh lab [jupyter lab options] | bash course.sh test [pytest options]" >&2; exit 2 ;;
esac

venv=${MINIBERT_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
install=1
[ "${MINIBERT_SKIP_INSTALL:-}" != 1 ] || install=0
if [ $install = 1 ]; then
  python -m pip install -q --upgrade pip
fi

if [ $install = 1 ] && ! python -c "import torch" 2>/dev/null; then
  # Prefer a torch wheel that this machine already has (a lab's wheel folder given to pip as find-links, for
  # example a CPU build); otherwise pip's default, which on Linux is the CUDA build.
  local_torch=$(python -m pip install --dry-run --no-index --no-deps --quiet --report - torch 2>/dev/null \
    | python -c 'import json,sys; print(json.load(sys.stdin)["install"][0]["metadata"]["version"])' 2>/dev/null || true)
  python -m pip install "torch${local_torch:+==$local_torch}"
fi

if [ "$what" = lab ]; then
  if [ $install = 1 ]; then
    python -m pip install -q -e ".[lessons]"
  fi
  # Given a notebook's path alone, Jupyter serves that notebook's folder (lessons/) and nothing above it. With
  # root_dir set to the repository, the file browser shows lessons/, exercises/ and solutions/, and the notebook opens
  # by its path from there: /lab/tree/lessons/00_start_here.ipynb.
  args=(lessons/00_start_here.ipynb --ServerApp.root_dir="$PWD")
  if [ "$(id -u)" = 0 ]; then
    echo "course.sh: running as root (a container or a classroom VM?), so JupyterLab is started with --allow-root."
    args+=(--allow-root)
  fi
  exec python -m jupyter lab "${args[@]}" "${@:2}"
fi

if [ $install = 1 ]; then
  python -m pip install -q -e ".[dev]"
fi
export HF_HUB_DISABLE_TELEMETRY=1
python -m ruff check .
python -m pytest --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval tests lessons "${@:2}"
