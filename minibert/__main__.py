"""The `python -m minibert` command line.

    python -m minibert info        versions, device, mode and data location (what lesson 00 checks)
    python -m minibert pretrain    pre-train a BERT with MLM + NSP (lesson 06), for example:

        python -m minibert pretrain --config mini --corpus wikitext-103 --max-steps 10000 --out runs/mini
        python -m minibert pretrain --config tiny --corpus my_text.txt --max-steps 200 --out runs/tiny
        torchrun --nproc_per_node 2 -m minibert pretrain --config mini --corpus wikitext-103 --out runs/ddp
        python -m minibert pretrain ... --out runs/mini --resume      # continue from the latest checkpoint

    python -m minibert finetune    fine-tune on a task and print the dev metrics (lessons 07-10), for example:

        python -m minibert finetune sst2 --from course --quick     # the course's own small pre-trained BERT
        python -m minibert finetune sst2 --from runs/mini/checkpoint-10000
        python -m minibert finetune conll2003 --from bert-base-uncased --epochs 3
        python -m minibert finetune squad --from random:tiny --quick       # a randomly initialised encoder
        python -m minibert finetune conll2003 --from runs/mini/checkpoint-10000 --feature-based --last-n-layers 4
"""

from __future__ import annotations

import argparse

from minibert import finetune_command, pretrain_command


def _at_least(low):
    """An argparse type: an int >= low, with a message naming the bound (--batch-size 0 fails here, not later)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


positive = _at_least(1)


def _info(args) -> int:
    from minibert.runtime import environment_report, setup

    for key, value in environment_report().items():
        print(f"{key + ':':<14}{value}")
    setup(seed=0)
    return 0


# ------------------------------------------------------------------------------------------ pretrain


def _add_pretrain(sub) -> None:
    p = sub.add_parser("pretrain", help="pre-train a BERT with MLM + NSP (works under torchrun too)",
                       description="Pre-train BertForPreTraining on a corpus with masked-LM and next-sentence "
                                   "prediction. Under `torchrun --nproc_per_node N` it trains with "
                                   "DistributedDataParallel.")
    p.add_argument("--config", default="mini", help="a preset (tiny, mini, small, medium, base, large) or a "
                   "config.json (default: mini)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a BertConfig field, e.g. --set hidden_size=64 (repeatable)")
    p.add_argument("--corpus", nargs="+", default=["wikitext-2"], help="a dataset name (wikitext-2, wikitext-103, "
                   "bert-sample-text...) or a text file with blank lines between documents (default: wikitext-2); "
                   "or several name:split (any dataset, labels dropped: sst2:train) and files, mixed, each holding out "
                   "its last --eval-fraction of documents; name:split*K reads a source's training documents K times "
                   "(quote it in a shell: 'sst2:train*3')")
    p.add_argument("--split", default=None, help="the dataset split to train on (default: train, or where only a local "
                   "copy without it is at hand, such as WikiText-2's, one of its splits other than --eval-split)")
    p.add_argument("--eval-split", default="validation", help="held-out split of a named dataset (default: "
                   "validation); text files hold out their last --eval-fraction of documents")
    p.add_argument("--eval-fraction", type=float, default=0.05)
    p.add_argument("--eval-batches", type=positive, default=50,
                   help="at most this many held-out batches per evaluation")
    p.add_argument("--max-documents", type=positive, default=None, help="train on the first N documents only")
    p.add_argument("--sentences-per-document", type=positive, default=None, help="cut documents into documents of N "
                   "sentences (for a corpus that is one long text, such as zh-wiki-sample: NSP needs two documents)")
    p.add_argument("--vocab", default="bert-base-uncased", help="bert-base-uncased, bert-base-chinese, a vocab.txt, "
                   "or train:N to train N WordPiece tokens on the corpus with lesson 01's trainer")
    p.add_argument("--vocab-min-frequency", type=positive, default=60,
                   help="with --vocab train:N, merge only pairs seen "
                   "this often (WordPiece's score favours rare pairs; on a small corpus they fill the vocab)")
    p.add_argument("--dupe-factor", type=positive, default=1,
                   help="pair the corpus this many times, each time with other "
                   "pairs and random sentences (Google's dupe_factor)")
    p.add_argument("--mask-prob", type=float, default=0.15, help="share of tokens to predict (BERT: 0.15)")
    p.add_argument("--cased", action="store_true", help="do not lowercase (for cased vocabularies)")
    p.add_argument("--seq-len", type=positive, default=128)
    p.add_argument("--batch-size", type=positive, default=32, help="per process and micro-batch")
    p.add_argument("--grad-accum", type=positive, default=1)
    p.add_argument("--max-steps", type=positive, default=1000)
    p.add_argument("--stop-after", type=positive, default=None, help="stop (with a checkpoint) after this many steps, "
                   "keeping the schedule of --max-steps: run the first part of a long recipe, --resume the rest")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=_at_least(0), default=None, help="default: 10%% of --max-steps")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0, help="gradient clipping norm (0: none)")
    p.add_argument("--precision", choices=["bf16", "fp16", "fp32"], default=None, help="default: the best here")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--whole-word", action="store_true", help="whole-word masking")
    p.add_argument("--static-masking", action="store_true", help="the same masks every epoch")
    p.add_argument("--log-every", type=positive, default=10)
    p.add_argument("--eval-every", type=positive, default=None, help="default: at the end only")
    p.add_argument("--save-every", type=positive, default=None, help="default: at the end (and on Ctrl-C) only")
    p.add_argument("--keep-checkpoints", type=_at_least(0), default=2,
                   help="how many checkpoint-* folders to keep (the "
                   "newest; default 2)")
    p.add_argument("--num-workers", type=_at_least(0), default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", default="runs/pretrain", help="the run folder: checkpoints, history.json, loss_curve.png")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.set_defaults(run=pretrain_command.run)


# ------------------------------------------------------------------------------------------ finetune


def _add_finetune(sub) -> None:
    from minibert.tasks import TASKS

    p = sub.add_parser("finetune", help="fine-tune on a task (sst2, conll2003, squad...) and print dev metrics",
                       description="Fine-tune a BERT checkpoint on a task with the course's one Trainer: an evaluation "
                                   "each epoch, the best weights kept, and the dev metrics printed at the end.")
    p.add_argument("task", choices=sorted(TASKS), help="the task (its dataset comes from minibert.data)")
    p.add_argument("--from", dest="source", required=True, metavar="CHECKPOINT",
                   help="course (the course's own small BERT, shipped with minibert), a checkpoint folder (e.g. from "
                        "`python -m minibert pretrain`), a hub name such as bert-base-uncased (online), or "
                        "random:PRESET (random:course, random:tiny, random:mini...) for a randomly initialised encoder")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="quick", action="store_true", default=None,
                      help="small slices (the default without a GPU)")
    mode.add_argument("--full", dest="quick", action="store_false", help="whole datasets (the default on a GPU)")
    p.add_argument("--vocab", default=None, help="bert-base-uncased, bert-base-chinese or a vocab.txt (default: the "
                   "checkpoint's vocab.txt, else the task's vocab)")
    p.add_argument("--cased", action="store_true", help="do not lowercase (for cased vocabularies)")
    p.add_argument("--epochs", type=float, default=None, help="default: the task's (minibert.tasks.QUICK and "
                   "FULL, which the lessons read): 3, QA 2")
    p.add_argument("--max-steps", type=positive, default=None, help="train this many steps instead of --epochs")
    p.add_argument("--batch-size", type=positive, default=32)
    p.add_argument("--lr", type=float, default=None, help="default: 5e-5; for hidden size <= 256 (tiny, mini) 1e-4, "
                   "or 1e-3 in quick mode; 1e-3 feature-based")
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=positive, default=None,
                   help="tokens per example (default 128; QA windows 384, quick 128)")
    p.add_argument("--stride", type=positive, default=None,
                   help="QA: tokens shared by consecutive windows (default 128; quick 64)")
    p.add_argument("--train-limit", type=positive, default=None, help="train on the first N records (quick mode's "
                   "default: the task's slice, 2,000 sentences, 1,000 NER sentences or questions)")
    p.add_argument("--eval-limit", type=positive, default=None, help="evaluate on the first N records (quick mode's "
                   "default: 500 sentences, 300 NER sentences or questions)")
    p.add_argument("--feature-based", action="store_true", help="freeze the encoder, train the head only")
    p.add_argument("--last-n-layers", type=positive, default=1, help="NER/QA: concatenate the last N hidden layers "
                   "(4 as in the BERT paper's feature-based NER)")
    p.add_argument("--metric", default=None, help="the held-out metric that picks the best weights (default: "
                   "accuracy, F1 for MRPC, NER and QA)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="random:PRESET only: override a BertConfig field, e.g. --set num_hidden_layers=1")
    p.add_argument("--eval-every", type=positive, default=None, help="steps between evaluations (default: one epoch)")
    p.add_argument("--precision", choices=["bf16", "fp16", "fp32"], default=None, help="default: the best here")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=positive, default=10)
    p.add_argument("--num-workers", type=_at_least(0), default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", default=None, help="run folder: best/ (the best weights), the last checkpoint and "
                   "metrics.json (default: runs/finetune-TASK)")
    p.add_argument("--no-save", action="store_true", help="write nothing, print the metrics only")
    p.set_defaults(run=finetune_command.run)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="minibert", description="BERT built piece by piece.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, device, mode and data location").set_defaults(run=_info)
    _add_pretrain(sub)
    _add_finetune(sub)
    args = parser.parse_args(argv)
    if args.command == "finetune" and args.out is None:
        args.out = f"runs/finetune-{args.task}"
    if args.command == "finetune" and args.epochs is not None and args.epochs <= 0:
        parser.error(f"argument --epochs: must be more than 0, got {args.epochs:g}")
    from minibert.checkpoints import CheckpointMismatchError, UnreadableCheckpointError
    from minibert.data import DatasetUnavailableError
    from minibert.resume import ResumeMismatchError

    try:
        return args.run(args)
    except ResumeMismatchError as e:  # name the flags to type, not the TrainingConfig fields
        raise SystemExit(f"minibert {args.command} --resume: {_resume_advice(e)}") from None
    except (UnreadableCheckpointError, CheckpointMismatchError, DatasetUnavailableError) as e:
        raise SystemExit(f"minibert {args.command}: {e}") from None


FLAGS = {"batch_size": "--batch-size", "grad_accum_steps": "--grad-accum", "lr": "--lr", "seed": "--seed",
         "weight_decay": "--weight-decay", "warmup_steps": "--warmup-steps", "vocab_file": "--vocab"}


def _resume_advice(e) -> str:
    """The run's own flags, to type again: '--lr 0.002 --batch-size 64 (given: --lr 0.001 --batch-size 32)'."""
    differences = {key: (then, now) for key, then, now in e.differences}
    if "model.vocab_size" in differences:  # one --vocab, with the sizes: the vocabulary is one setting
        sizes = differences.pop("model.vocab_size")
        then, now = differences.pop("vocab_file", ("a vocabulary", "another"))
        differences["vocab_file"] = tuple(f"{name} ({size:,} tokens)" for name, size in zip((then, now), sizes))
    run, given = [], []
    for key, (then, now) in differences.items():
        flag = FLAGS.get(key) or (f"--set {key.removeprefix('model.')}=" if key.startswith("model.") else key)
        sep = "" if flag.endswith("=") else " "
        run.append(f"{flag}{sep}{then}")
        given.append(f"{flag}{sep}{now}")
    return (f"{e.folder} was trained with {' '.join(run)}, not {' '.join(given)}. Resume with the run's own "
            f"settings, or pass another --out to start a new run")


if __name__ == "__main__":
    raise SystemExit(main())
