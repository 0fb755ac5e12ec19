#!/usr/bin/env bash
# The course's two commands (see README.md):
#   bash course.sh lab    set up .venv and open the course in JupyterLab
#   bash course.sh test   set up .venv and run every test: ruff, unit tests, then every lesson under nbval
# Environment: MINIBERT_DATA (a local copy of the datasets; otherwise they are downloaded),
#              MINIBERT_VENV (where the virtual environment goes, default .venv).
set -euo pipefail
cd "$(dirname "$0")"
what=${1:-}
case "$what" in lab|test) ;; *) echo "usage: bash course.sh lab|test" >&2; exit 2 ;; esac

venv=${MINIBERT_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install -q --upgrade pip

if ! python -c "import torch" 2>/dev/null; then
  # Prefer a torch wheel that this machine already has (a lab's wheel folder given to pip as find-links, for
  # example a CPU build); otherwise pip's default, which on Linux is the CUDA build.
  local_torch=$(python -m pip install --dry-run --no-index --no-deps --quiet --report - torch 2>/dev/null \
    | python -c 'import json,sys; print(json.load(sys.stdin)["install"][0]["metadata"]["version"])' 2>/dev/null || true)
  python -m pip install "torch${local_torch:+==$local_torch}"
fi

if [ "$what" = lab ]; then
  python -m pip install -q -e ".[lessons]"
  exec python -m jupyter lab lessons/00_start_here.ipynb
fi

python -m pip install -q -e ".[dev]"
export HF_HUB_DISABLE_TELEMETRY=1
python -m ruff check .
python -m pytest --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval tests lessons "${@:2}"
