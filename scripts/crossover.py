"""The crossover: how much pre-training pays, as a function of pre-training steps.

    python scripts/crossover.py runs/course          # the recipe's --out, with its checkpoint-1000 ... folders

Fine-tunes, in quick mode (the lessons' settings: minibert.course_bert.QUICK_FINETUNING), the recipe's configuration
from random weights (step 0) and from every checkpoint the recipe saved, on SST-2 (accuracy) and CoNLL-2003 (entity
F1), and writes minibert/course_bert/crossover.json, which lessons 06, 07 and 09 plot. Each point is one fine-tuning
run with seed 0; the noise between seeds is a point or two (the note of the run says how much).

What it leaves out: several seeds per point, other tasks (lessons 08 and 10 compare the start and the end only).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from minibert.course_bert import QUICK_FINETUNING, quick_task_data
from minibert.finetuning import finetune
from minibert.runtime import seed_everything
from minibert.tasks import TASKS, model_for_task, run_settings
from minibert.tokenizer import WordPieceTokenizer
from minibert.training import TrainingConfig

TASK_NAMES = ("sst2", "conll2003")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="the recipe's --out folder")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "minibert" / "course_bert"
                                         / "crossover.json"))
    args = ap.parse_args()
    run = Path(args.run)
    checkpoints = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    tokenizer = WordPieceTokenizer.from_vocab_file(run / "vocab.txt")
    data = {name: quick_task_data(TASKS[name], tokenizer) for name in TASK_NAMES}
    points = []
    for step, source in [(0, "random:" + str(checkpoints[0] / "config.json")),
                         *[(int(c.name.split("-")[1]), str(c)) for c in checkpoints]]:
        point = {"step": step}
        for name in TASK_NAMES:
            task, (train, held, labels) = TASKS[name], data[name]
            seed_everything(0)
            model = model_for_task(task, source, tokenizer, labels, verbose=False)
            start = time.perf_counter()
            config = TrainingConfig(lr=QUICK_FINETUNING["lr"], batch_size=QUICK_FINETUNING["batch_size"], seed=0,
                                    progress=False)
            result = finetune(model, train, held, config, epochs=run_settings(task, quick=True).epochs)
            point[name] = round(result.best_metrics[task.metric], 4)
            print(f"step {step:>5}: {name} {task.metric} {point[name]:.4f} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
        points.append(point)
    metrics = {name: TASKS[name].metric for name in TASK_NAMES}
    settings = QUICK_FINETUNING | {name: asdict(run_settings(name, quick=True)) for name in TASK_NAMES}
    Path(args.out).write_text(json.dumps({"settings": settings, "metrics": metrics, "points": points},
                                         indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
