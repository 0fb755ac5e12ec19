"""Ship the course BERT: copy a checkpoint of the laptop recipe into minibert/course_bert/, small enough to commit.

    python scripts/ship_course_bert.py runs/course --minutes 25.3 --machine "2-core CPU (...)"

What it writes (minibert.course_bert.course_folder()):
- model.safetensors: the weights in fp16 (half the size; `from_pretrained` and `transformers` read them back as fp32),
  with Hugging Face's names, as every minibert checkpoint;
- config.json: the checkpoint's configuration (dropout 0, as the recipe pre-trained; lesson 06 says why);
- vocab.txt, history.json (the run's losses and held-out accuracies);
- recipe.json: the exact command (minibert.course_bert.RECIPE), the machine, the minutes it took, torch's version.

It refuses to write more than 5 MB. What it leaves out: the optimizer state (trainer_state.pt), the other checkpoints.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from minibert.course_bert import RECIPE
from minibert.resume import latest_checkpoint

LIMIT_BYTES = 5 * 1024 * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="the recipe's --out folder (its latest checkpoint is shipped)")
    ap.add_argument("--minutes", type=float, required=True, help="the recipe's wall-clock time, measured")
    ap.add_argument("--machine", required=True, help="where it ran, e.g. '2-core CPU (Intel Xeon ...), idle'")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "minibert" / "course_bert"))
    args = ap.parse_args()

    run, out = Path(args.run), Path(args.out)
    checkpoint = latest_checkpoint(run)
    if checkpoint is None:
        raise SystemExit(f"no checkpoint in {run}")
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.to(torch.float16).contiguous() for k, v in load_file(checkpoint / "model.safetensors").items()}
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    shutil.copy(checkpoint / "config.json", out / "config.json")
    shutil.copy(checkpoint / "vocab.txt", out / "vocab.txt")
    history = json.loads((run / "history.json").read_text(encoding="utf-8"))
    (out / "history.json").write_text(json.dumps(history, indent=0) + "\n", encoding="utf-8")
    recipe = {"command": f"python -m minibert {RECIPE}", "checkpoint": checkpoint.name,
              "minutes": args.minutes, "machine": args.machine, "torch": torch.__version__,
              "python": platform.python_version()}
    (out / "recipe.json").write_text(json.dumps(recipe, indent=1) + "\n", encoding="utf-8")
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"{out}: {size / 1e6:.2f} MB from {checkpoint}")
    if size > LIMIT_BYTES:
        raise SystemExit(f"{out} is {size / 1e6:.1f} MB, more than the 5 MB the repository allows")


if __name__ == "__main__":
    main()
