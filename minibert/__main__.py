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
import difflib
import json
import statistics
from pathlib import Path


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


def _parse_overrides(items: list[str]) -> dict:
    """["hidden_size=64", "hidden_dropout_prob=0.0"] -> {"hidden_size": 64, "hidden_dropout_prob": 0.0}."""
    from dataclasses import fields

    from minibert.model import BertConfig

    known = [f.name for f in fields(BertConfig)]
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise SystemExit(f"--set expects key=value (a BertConfig field), got {item!r}; e.g. --set hidden_size=64")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise SystemExit(f"--set {item}: BertConfig has no field {key!r}"
                             + (f"; did you mean --set {close[0]}={value}?" if close else f"; its fields: "
                                f"{', '.join(known)}"))
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _bert_config(args, overrides: dict):
    """--config: a preset name or a config.json, with the --set overrides; a misspelled name is one line."""
    from minibert.model import PRESETS, BertConfig

    if Path(args.config).is_file():
        return BertConfig(**{**BertConfig.from_json_file(args.config).to_dict(), **overrides})
    if args.config not in PRESETS:
        close = difflib.get_close_matches(args.config, list(PRESETS), n=1)
        raise SystemExit(f"--config {args.config!r} is neither a preset ({', '.join(PRESETS)}) nor a config.json "
                         f"file" + (f"; did you mean --config {close[0]}?" if close else ""))
    return BertConfig.preset(args.config, **overrides)


def _documents(args, say):
    """Training documents and held-out documents (or None) for --corpus (one name, several name:split, or files)."""
    from minibert import data
    from minibert.corpus import documents_from_lines
    from minibert.course_bert import parse_source, split_held_out, unlabelled_documents

    corpus = args.corpus
    if len(corpus) > 1 or ":" in corpus[0]:  # a mix: name:split of any dataset (labels dropped) or text files
        corpora = {}
        for source in corpus:
            path = Path(source).expanduser()
            if path.is_file():
                corpora[source] = documents_from_lines(path.read_text(encoding="utf-8").splitlines())
                continue
            name, split = parse_source(source)
            if name not in data.DATASETS:
                raise SystemExit(f"--corpus {source!r} is neither a dataset name ({', '.join(sorted(data.DATASETS))}"
                                 f", with an optional :split) nor a text file")
            corpora[source] = unlabelled_documents(name, split)
        if args.max_documents:
            corpora = {k: v[:args.max_documents] for k, v in corpora.items()}
        corpora = {k: _cut(v, args) for k, v in corpora.items()}
        train, held_out = split_held_out(corpora, args.eval_fraction)
        train = _enough_documents(train, " ".join(corpus))
        if len(held_out) < 2:
            say(f"{len(held_out)} held-out document(s): no held-out evaluation (next-sentence pairs need 2)")
            held_out = []
        say("corpus: " + ", ".join(f"{k} ({len(v):,} documents)" for k, v in corpora.items())
            + f"; {args.eval_fraction:.0%} of each held out")
        return train, held_out or None
    source = corpus[0]
    if source in data.DATASETS:
        args.split = _training_split(source, args, say)
        train = documents_from_lines(data.load_dataset(source, args.split))
        held_out = None
        spec = data.DATASETS[source]
        splits = set(spec.local) | set(spec.hub_splits)
        if args.eval_split and args.eval_split != args.split and args.eval_split in splits:
            held_out = documents_from_lines(data.load_dataset(source, args.eval_split))
        elif args.eval_split and args.eval_split != args.split:
            say(f"{source} has no '{args.eval_split}' split: holding out part of '{args.split}' instead")
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise SystemExit(f"--corpus {source!r} is neither a dataset name ({', '.join(sorted(data.DATASETS))}) "
                             f"nor a text file")
        train, held_out = documents_from_lines(path.read_text(encoding="utf-8").splitlines()), None
    if args.max_documents:
        train = train[:args.max_documents]
    train = _enough_documents(_cut(train, args), source)
    if held_out is None and args.eval_fraction > 0:
        n = max(2, round(len(train) * args.eval_fraction))  # NSP needs two documents
        if len(train) - n >= 2:
            train, held_out = train[:-n], train[-n:]
        else:
            say(f"only {len(train)} documents: no held-out evaluation (it needs 2 besides 2 for training)")
    return train, held_out


def _training_split(name: str, args, say) -> str:
    """--split, or by default 'train'; but when MINIBERT_DATA holds this dataset without a train split (WikiText-2's
    local copy has test and validation only), a split it holds, said, and not the held-out one when another is there
    (a local copy, once given, is used: no download is tried, and no wait for one offline)."""
    from minibert import data

    if args.split is not None:
        return args.split
    local = data.local_splits(name)
    if not local or "train" in local:
        return "train"
    others = [s for s in local if s != args.eval_split] or local
    say(f"{name}: the local copy in MINIBERT_DATA holds {', '.join(local)}, no 'train': training on '{others[0]}'"
        + (f", holding out '{args.eval_split}'" if args.eval_split in local and others != local else "")
        + " (--split train downloads the train split instead)")
    return others[0]


def _cut(documents: list[list[str]], args) -> list[list[str]]:
    """--sentences-per-document N: one long text (zh-wiki-sample) -> documents that NSP can pair across."""
    n = args.sentences_per_document
    return [doc[i:i + n] for doc in documents for i in range(0, len(doc), n)] if n else documents


def _enough_documents(train: list[list[str]], source: str) -> list[list[str]]:
    if not train:
        raise SystemExit(f"--corpus {source}: it holds no text (no non-empty line): nothing to pre-train on")
    if len(train) < 2:
        raise SystemExit(f"--corpus {source} gives one training document ({len(train[0]):,} sentences), and "
                         f"next-sentence prediction needs two (NotNext takes sentence B from another document). Cut "
                         f"it with --sentences-per-document 20, or separate its documents with blank lines")
    return train


def _tokenizer(args, train_docs, say):
    """The tokenizer and its vocab.txt: a named vocab, a file, or train:N (lesson 01's trainer on the corpus)."""
    from minibert import data
    from minibert.tokenizer import WordPieceTokenizer, train_wordpiece

    if args.vocab.startswith("train:"):
        size = args.vocab.removeprefix("train:")
        if not size.isdigit():
            raise SystemExit(f"--vocab train:N wants a vocabulary size, e.g. train:8192, got {args.vocab!r}")
        tokenizer = train_wordpiece([s for doc in train_docs for s in doc], int(size), lowercase=not args.cased,
                                    min_frequency=args.vocab_min_frequency)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        vocab = tokenizer.save_vocab(Path(args.out) / "vocab.txt")
        say(f"vocab: {len(tokenizer):,} WordPiece tokens trained on the training documents (lesson 01's trainer, "
            f"pairs seen at least {args.vocab_min_frequency} times), saved to {vocab}")
        return tokenizer, vocab
    vocab = data.vocab_file(args.vocab) if args.vocab in data.VOCABS else Path(args.vocab)
    return WordPieceTokenizer.from_vocab_file(vocab, lowercase=not args.cased), vocab


def _pretrain(args) -> int:
    import torch

    from minibert.distributed import init_distributed
    from minibert.model import BertForPreTraining
    from minibert.pretraining import evaluate_pretraining, plot_loss_curve
    from minibert.pretraining_data import PretrainingDataset
    from minibert.resume import latest_checkpoint
    from minibert.runtime import seed_everything
    from minibert.training import Trainer, TrainingConfig

    _bert_config(args, _parse_overrides(args.set))  # a misspelled --config or --set fails now, not after the data
    rank, world_size, _ = init_distributed()
    say = print if rank == 0 else (lambda *a, **k: None)
    train_docs, held_out = _documents(args, say)
    if args.resume and args.vocab.startswith("train:") and (Path(args.out) / "vocab.txt").is_file():
        args.vocab = str(Path(args.out) / "vocab.txt")  # the vocab this run trained when it started
    tokenizer, vocab = _tokenizer(args, train_docs, say)
    overrides = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_id, **_parse_overrides(args.set)}
    config = _bert_config(args, overrides)
    if args.seq_len > config.max_position_embeddings:
        raise SystemExit(f"--seq-len {args.seq_len} is longer than the model's {config.max_position_embeddings} "
                         f"positions: pass --seq-len {config.max_position_embeddings} or less, or give the model more "
                         f"positions with --set max_position_embeddings={args.seq_len}")
    seed_everything(args.seed)
    model = BertForPreTraining(config)
    try:
        train = PretrainingDataset(train_docs, tokenizer, args.seq_len, seed=args.seed, whole_word=args.whole_word,
                                   static_masking=args.static_masking, dupe_factor=args.dupe_factor,
                                   mlm_probability=args.mask_prob)
    except ValueError as e:  # no pairs, a vocabulary without [MASK]...: the data's fault, said in the data's words
        raise SystemExit(f"minibert pretrain: {e}") from None
    evaluation = None
    if held_out:
        held = PretrainingDataset(held_out, tokenizer, args.seq_len, seed=args.seed + 1, static_masking=True,
                                  mlm_probability=args.mask_prob)
        evaluation = lambda m: evaluate_pretraining(m, held, args.batch_size, max_batches=args.eval_batches)
    say(f"{len(train_docs)} documents, {train.pairs.corpus.num_tokens:,} tokens, {len(train):,} pairs of at most "
        f"{args.seq_len} tokens; model {args.config}: {model.num_parameters() / 1e6:.1f}M parameters; "
        f"{world_size} process(es)")
    cfg = TrainingConfig(max_steps=args.max_steps, batch_size=args.batch_size, grad_accum_steps=args.grad_accum,
                         lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
                         clip_grad_norm=args.clip if args.clip > 0 else None, precision=args.precision,
                         device=args.device, seed=args.seed, log_every=args.log_every,
                         eval_every=args.eval_every or args.max_steps, save_every=args.save_every, out_dir=args.out,
                         keep_checkpoints=args.keep_checkpoints,
                         num_workers=args.num_workers, progress=not args.no_progress,
                         extra={"argv": vars(args) | {"run": None}})
    callbacks = []
    if args.stop_after:
        def stop_after(trainer, record):  # as Ctrl-C: a checkpoint, then stop; the schedule stays --max-steps's
            if trainer.step >= args.stop_after:
                raise KeyboardInterrupt

        callbacks.append(stop_after)
    trainer = Trainer(model, train, cfg, eval_fn=evaluation, vocab_file=vocab, callbacks=callbacks)
    resume = None
    if args.resume:
        resume = latest_checkpoint(args.out)
        if resume is None:
            say(f"--resume: no checkpoint in {args.out} yet, starting from scratch")
    history = trainer.train(resume_from=resume)
    if rank == 0:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "history.json").write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
        if any("loss" in r for r in history):
            import matplotlib

            matplotlib.use("Agg")
            corpus = Path(args.corpus[0]).name + (f" and {len(args.corpus) - 1} more" if len(args.corpus) > 1 else "")
            ax = plot_loss_curve(history, title=f"Pre-training loss, {args.config} on {corpus}")
            ax.figure.savefig(out / "loss_curve.png", dpi=120, bbox_inches="tight")
        logs = [r for r in history if "loss" in r]
        if logs:
            last = logs[-1]
            say(f"step {last['step']}: loss {last['loss']:.4f} (MLM {last['mlm_loss']:.4f}, "
                f"NSP {last['nsp_loss']:.4f})")
            later = logs[len(logs) // 5:]  # without the first fifth: start-up and the data loader's first batches
            step_s = statistics.median(r["seconds_per_step"] for r in later)
            mfu = [r["mfu"] for r in later if r["mfu"] is not None]
            say(f"training alone (median after start-up): {1000 * step_s:.1f} ms/step, so {step_s * 1000 / 60:.1f} "
                f"min per 1,000 steps; {statistics.median(r['tokens_per_s'] for r in later):,.0f} tokens/s"
                + (f", MFU {100 * statistics.median(mfu):.1f}%" if mfu else ""))
        evals = [r for r in history if "eval_mlm_accuracy" in r]
        if evals:
            e = evals[-1]
            say(f"held-out MLM accuracy at step {e['step']}: {e['eval_mlm_accuracy']:.4f}, "
                f"NSP accuracy {e['eval_nsp_accuracy']:.4f}")
        say(f"checkpoint: {trainer.last_checkpoint}  (loads in transformers.BertForPreTraining.from_pretrained)")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if args.stop_after and trainer.step >= args.stop_after:
        say(f"stopped after step {trainer.step}, as --stop-after asked (the schedule is that of --max-steps "
            f"{args.max_steps}); --resume goes on")
        return 0
    return 130 if trainer.interrupted else 0


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
                   "its last --eval-fraction of documents")
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
    p.set_defaults(run=_pretrain)


# ------------------------------------------------------------------------------------------ finetune



def _finetune(args) -> int:
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
                               _parse_overrides(args.set))
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
    print("baseline (" + {"classification": "majority class", "ner": "all O", "qa": "empty answer"}[task.kind]
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
    p.add_argument("--epochs", type=float, default=None, help="default: the task's (minibert.finetuning.QUICK and "
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
    p.set_defaults(run=_finetune)


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
