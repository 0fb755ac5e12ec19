"""`python -m minibert finetune`: lessons 07-10's fine-tuning from the command line (the parser is in __main__.py).

What it does: the task's records (quick or full mode, `minibert.tasks.run_settings`, each flag overriding), the
tokenizer of the checkpoint, the head on the encoder `--from` names (a folder, a hub name, "course", "random:..."),
the baseline, `minibert.finetuning.finetune`, and the dev metrics printed and saved with the best weights.

What it leaves out: hyper-parameter search, and several seeds (run it again with --seed).
"""

from __future__ import annotations

import json
from pathlib import Path

from minibert.pretrain_command import parse_overrides


def run(args) -> int:
    from minibert import data
    from minibert.course_bert import resolve_start
    from minibert.finetuning import baseline_metrics, finetune
    from minibert.heads import VocabMismatchError
    from minibert.runtime import is_quick, seed_everything
    from minibert.tasks import TASKS, encode_task, model_for_task, run_settings, task_labels, task_records
    from minibert.tokenizer import WordPieceTokenizer
    from minibert.training import TrainingConfig

    task = TASKS[args.task]
    quick = is_quick() if args.quick is None else args.quick
    try:
        source = resolve_start(args.source)  # "course" and "random:course": the shipped checkpoint's folder
    except FileNotFoundError as e:
        raise SystemExit(f"minibert finetune: {e}") from None
    folder = None if source.startswith("random:") or not Path(source).expanduser().is_dir() else Path(source)
    if folder is None and source.startswith("random:") and Path(source.removeprefix("random:")).is_file():
        folder = Path(source.removeprefix("random:")).parent  # a config.json: its folder's vocab.txt, if any
    if args.vocab:
        vocab = data.vocab_file(args.vocab) if args.vocab in data.VOCABS else Path(args.vocab)
    elif folder is not None and (folder / "vocab.txt").is_file():
        vocab = folder / "vocab.txt"
    else:
        vocab = data.vocab_file(task.vocab)
    tokenizer = WordPieceTokenizer.from_vocab_file(vocab, lowercase=not (args.cased or task.chinese))
    train_records, eval_records = task_records(task, seed=args.seed)
    labels = task_labels(task, train_records, eval_records)
    seed_everything(args.seed)
    try:
        model = model_for_task(task, source, tokenizer, labels, args.feature_based, args.last_n_layers,
                               parse_overrides(args.set))
    except VocabMismatchError as e:  # advice in flags, not in Python
        given = f"--vocab {args.vocab}" if args.vocab else f"the task's vocabulary ({task.vocab})"
        own = "drop --vocab (the checkpoint's own vocab.txt is then used)" if folder and (
            folder / "vocab.txt").is_file() else "pass --vocab with the vocab.txt the checkpoint was trained with"
        raise SystemExit(f"minibert finetune: {given} does not fit --from {args.source}: {e.reason}. To fix: {own}, "
                         f"or start from a checkpoint pre-trained with this vocabulary") from None
    except (OSError, ValueError) as e:  # no such folder, hub offline, vocab or weights that do not fit
        raise SystemExit(f"minibert finetune: cannot use --from {source}: {e}") from None
    settings = run_settings(task, quick)  # the lessons' quick and full settings, flags override each
    limit_train, limit_eval = args.train_limit or settings.train_limit, args.eval_limit or settings.eval_limit
    train_records, eval_records = train_records[:limit_train], eval_records[:limit_eval]
    max_length = args.max_length or settings.max_length
    if max_length > model.config.max_position_embeddings:
        print(f"max_length {max_length} -> {model.config.max_position_embeddings}: the model has no position "
              f"embeddings beyond that")
        max_length = model.config.max_position_embeddings
    stride = args.stride or settings.stride
    train = encode_task(task, train_records, tokenizer, labels, max_length, stride, training=True)
    held_out = encode_task(task, eval_records, tokenizer, labels, max_length, stride, training=False)
    for name, dataset, records in (("training", train, train_records), ("held-out", held_out, eval_records)):
        if len(dataset) == 0:
            raise SystemExit(f"minibert finetune {task.name}: no {name} example is left out of {len(records)} records "
                             f"(at --max-length {max_length}, every answer may fall outside the window): raise "
                             f"--max-length or the limits")
    hidden = model.config.hidden_size
    # small encoders (tiny, mini) take larger steps, and quick mode's few hundred steps larger ones still
    lr = args.lr or (1e-3 if args.feature_based or (quick and hidden <= 256) else 1e-4 if hidden <= 256 else 5e-5)
    print(f"{task.name} ({'quick' if quick else 'full'} mode): {len(train_records)} training examples "
          f"({len(train)} items), {len(eval_records)} held-out; model from {source}: "
          f"{model.num_parameters() / 1e6:.1f}M parameters, {model.num_parameters(trainable_only=True):,} "
          f"trained ({'feature-based' if args.feature_based else 'full fine-tuning'}), lr {lr:g}")
    baseline = baseline_metrics(held_out, train)
    print("baseline (" + {"classification": "majority class", "similarity": "mean score", "ner": "all O",
                          "qa": "empty answer"}[task.kind]
          + "): " + "  ".join(f"{k} {v:.4f}" for k, v in baseline.items()))
    epochs = args.epochs if args.epochs is not None else settings.epochs
    cfg = TrainingConfig(max_steps=args.max_steps or 1, batch_size=args.batch_size, lr=lr,
                         weight_decay=args.weight_decay, precision=args.precision, device=args.device, seed=args.seed,
                         log_every=args.log_every, eval_every=args.eval_every,
                         out_dir=None if args.no_save else args.out, num_workers=args.num_workers,
                         progress=not args.no_progress, extra={"argv": vars(args) | {"run": None}})
    result = finetune(model, train, held_out, cfg, epochs=None if args.max_steps else epochs,
                      metric=args.metric or task.metric, vocab_file=vocab, warmup_ratio=args.warmup_ratio)
    best = result.best_metrics or {}
    shown = "  ".join(f"{k} {v:.4f}" for k, v in best.items())
    print(f"dev metrics (best {args.metric or task.metric}, step {result.best_step} of {result.trainer.step}): {shown}")
    print(f"time per epoch: {result.seconds_per_epoch:.1f} s training ({result.steps_per_epoch} steps of "
          f"{args.batch_size}), evaluation {result.eval_seconds:.1f} s in all, on {result.trainer.device}")
    if not args.no_save:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        summary = {"task": task.name, "source": source, "quick": quick, "best_step": result.best_step,
                   "dev": best, "baseline": baseline, "seconds_per_epoch": result.seconds_per_epoch,
                   "history": result.history}
        (out / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        print(f"best weights: {out / 'best'}  (BertFor...from_pretrained loads them; so does transformers)")
    return 130 if result.trainer.interrupted else 0
