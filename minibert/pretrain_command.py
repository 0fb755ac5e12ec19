"""`python -m minibert pretrain`: lesson 06's pre-training from the command line (the parser is in __main__.py).

What it does: reads `--corpus` (a dataset, several name:split mixed, or text files; a held-out part for evaluation),
the vocabulary (a named one, a file, or `train:N` with lesson 01's trainer), builds `BertForPreTraining` from a
preset or a config.json with `--set` overrides, trains it with `minibert.training.Trainer` (resuming with
`--resume`), and writes history.json, loss_curve.png and the checkpoints, ending with the run's speed. A learner's
mistake (a misspelled preset or `--set` key, a corpus without text or with one document, a `--seq-len` longer than
the positions) ends the command with one line that says what to type instead.

What it leaves out: anything the Trainer leaves out (see minibert.training).
"""

from __future__ import annotations

import difflib
import json
import statistics
from pathlib import Path


def parse_overrides(items: list[str]) -> dict:
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


def bert_config(args, overrides: dict):
    """--config: a preset name or a config.json, with the --set overrides; a misspelled name is one line."""
    from minibert.config import PRESETS, BertConfig

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
    if len(corpus) > 1 or ":" in corpus[0] or "*" in corpus[0]:  # a mix: name:split*K of datasets (no labels), files
        corpora, times = {}, {}
        for source in corpus:
            try:
                name, split, times[source] = parse_source(source)
            except ValueError as e:
                raise SystemExit(f"--corpus {e}") from None
            path = Path(source.partition("*")[0]).expanduser()
            if path.is_file():
                corpora[source] = documents_from_lines(path.read_text(encoding="utf-8").splitlines())
                continue
            if name not in data.DATASETS:
                raise SystemExit(f"--corpus {source!r} is neither a dataset name ({', '.join(sorted(data.DATASETS))}"
                                 f", with an optional :split and *times) nor a text file")
            corpora[source] = unlabelled_documents(name, split)
        if args.max_documents:
            corpora = {k: v[:args.max_documents] for k, v in corpora.items()}
        corpora = {k: _cut(v, args) for k, v in corpora.items()}
        train, held_out = split_held_out(corpora, args.eval_fraction, times)
        train = _enough_documents(train, " ".join(corpus))
        if len(held_out) < 2:
            say(f"{len(held_out)} held-out document(s): no held-out evaluation (next-sentence pairs need 2)")
            held_out = []
        say("corpus: " + ", ".join(f"{k} ({len(v):,} documents" + (f", training ones {times[k]} times)" if times[k] > 1
                                                                   else ")") for k, v in corpora.items())
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


def run(args) -> int:
    import torch

    from minibert.distributed import init_distributed
    from minibert.model import BertForPreTraining
    from minibert.pretraining import evaluate_pretraining, plot_loss_curve
    from minibert.pretraining_data import PretrainingDataset
    from minibert.resume import latest_checkpoint
    from minibert.runtime import seed_everything
    from minibert.training import Trainer, TrainingConfig

    bert_config(args, parse_overrides(args.set))  # a misspelled --config or --set fails now, not after the data
    rank, world_size, _ = init_distributed()
    say = print if rank == 0 else (lambda *a, **k: None)
    train_docs, held_out = _documents(args, say)
    if args.resume and args.vocab.startswith("train:") and (Path(args.out) / "vocab.txt").is_file():
        args.vocab = str(Path(args.out) / "vocab.txt")  # the vocab this run trained when it started
    tokenizer, vocab = _tokenizer(args, train_docs, say)
    overrides = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_id, **parse_overrides(args.set)}
    config = bert_config(args, overrides)
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
