"""The `python -m minibert` command line.

    python -m minibert info        versions, device, mode and data location (what lesson 00 checks)
    python -m minibert pretrain    pre-train a BERT with MLM + NSP (lesson 06), for example:

        python -m minibert pretrain --config mini --corpus wikitext-103 --max-steps 10000 --out runs/mini
        python -m minibert pretrain --config tiny --corpus my_text.txt --max-steps 200 --out runs/tiny
        torchrun --nproc_per_node 2 -m minibert pretrain --config mini --corpus wikitext-103 --out runs/ddp
        python -m minibert pretrain ... --out runs/mini --resume      # continue from the latest checkpoint
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _info(args) -> int:
    from minibert.runtime import environment_report, setup

    for key, value in environment_report().items():
        print(f"{key + ':':<14}{value}")
    setup(seed=0)
    return 0


# ------------------------------------------------------------------------------------------ pretrain


def _parse_overrides(items: list[str]) -> dict:
    """["hidden_size=64", "hidden_dropout_prob=0.0"] -> {"hidden_size": 64, "hidden_dropout_prob": 0.0}."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value (a BertConfig field), got {item!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def _documents(args, say):
    """Training documents and held-out documents (or None) for --corpus."""
    from minibert import data
    from minibert.pretraining_data import documents_from_lines

    if args.corpus in data.DATASETS:
        train = documents_from_lines(data.load_dataset(args.corpus, args.split))
        held_out = None
        if args.eval_split and args.eval_split != args.split:
            held_out = documents_from_lines(data.load_dataset(args.corpus, args.eval_split))
    else:
        path = Path(args.corpus).expanduser()
        if not path.is_file():
            raise SystemExit(f"--corpus {args.corpus!r} is neither a dataset name ({', '.join(sorted(data.DATASETS))}) "
                             f"nor a text file")
        train, held_out = documents_from_lines(path.read_text(encoding="utf-8").splitlines()), None
    if args.max_documents:
        train = train[:args.max_documents]
    if held_out is None and args.eval_fraction > 0:
        n = max(2, round(len(train) * args.eval_fraction))  # NSP needs two documents
        if len(train) - n >= 2:
            train, held_out = train[:-n], train[-n:]
        else:
            say(f"only {len(train)} documents: no held-out evaluation (it needs 2 besides 2 for training)")
    return train, held_out


def _pretrain(args) -> int:
    import torch

    from minibert import data
    from minibert.model import BertConfig, BertForPreTraining
    from minibert.pretraining import (
        Trainer,
        TrainingConfig,
        evaluate_pretraining,
        init_distributed,
        latest_checkpoint,
        plot_loss_curve,
    )
    from minibert.pretraining_data import PretrainingDataset
    from minibert.runtime import seed_everything
    from minibert.tokenizer import WordPieceTokenizer

    rank, world_size, _ = init_distributed()
    say = print if rank == 0 else (lambda *a, **k: None)
    vocab = data.vocab_file(args.vocab) if args.vocab in data.VOCABS else Path(args.vocab)
    tokenizer = WordPieceTokenizer.from_vocab_file(vocab, lowercase=not args.cased)
    train_docs, held_out = _documents(args, say)
    overrides = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_id, **_parse_overrides(args.set)}
    if Path(args.config).is_file():
        config = BertConfig(**{**BertConfig.from_json_file(args.config).to_dict(), **overrides})
    else:
        config = BertConfig.preset(args.config, **overrides)
    if args.seq_len > config.max_position_embeddings:
        raise SystemExit(f"--seq-len {args.seq_len} is longer than max_position_embeddings="
                         f"{config.max_position_embeddings}")
    seed_everything(args.seed)
    model = BertForPreTraining(config)
    train = PretrainingDataset(train_docs, tokenizer, args.seq_len, seed=args.seed, whole_word=args.whole_word,
                               static_masking=args.static_masking)
    evaluation = None
    if held_out:
        held = PretrainingDataset(held_out, tokenizer, args.seq_len, seed=args.seed + 1, static_masking=True)
        evaluation = lambda m: evaluate_pretraining(m, held, args.batch_size, max_batches=args.eval_batches)
    say(f"{len(train_docs)} documents, {train.pairs.corpus.num_tokens:,} tokens, {len(train):,} pairs of at most "
        f"{args.seq_len} tokens; model {args.config}: {model.num_parameters() / 1e6:.1f}M parameters; "
        f"{world_size} process(es)")
    cfg = TrainingConfig(max_steps=args.max_steps, batch_size=args.batch_size, grad_accum_steps=args.grad_accum,
                         lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
                         clip_grad_norm=args.clip if args.clip > 0 else None, precision=args.precision,
                         device=args.device, seed=args.seed, log_every=args.log_every,
                         eval_every=args.eval_every or args.max_steps, save_every=args.save_every, out_dir=args.out,
                         num_workers=args.num_workers, progress=not args.no_progress,
                         extra={"argv": vars(args) | {"run": None}})
    trainer = Trainer(model, train, cfg, eval_fn=evaluation, vocab_file=vocab)
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
            ax = plot_loss_curve(history, title=f"Pre-training loss, {args.config} on {Path(args.corpus).name}")
            ax.figure.savefig(out / "loss_curve.png", dpi=120, bbox_inches="tight")
        last = [r for r in history if "loss" in r][-1:]
        if last:
            say(f"step {last[0]['step']}: loss {last[0]['loss']:.4f} (MLM {last[0]['mlm_loss']:.4f}, "
                f"NSP {last[0]['nsp_loss']:.4f})")
        evals = [r for r in history if "eval_mlm_accuracy" in r]
        if evals:
            e = evals[-1]
            say(f"held-out at step {e['step']}: MLM accuracy {e['eval_mlm_accuracy']:.4f}, "
                f"NSP accuracy {e['eval_nsp_accuracy']:.4f}")
        say(f"checkpoint: {trainer.last_checkpoint}  (loads in transformers.BertForPreTraining.from_pretrained)")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
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
    p.add_argument("--corpus", default="wikitext-2", help="a dataset name (wikitext-2, wikitext-103, "
                   "bert-sample-text...) or a text file with blank lines between documents (default: wikitext-2)")
    p.add_argument("--split", default="train", help="the dataset split to train on (default: train)")
    p.add_argument("--eval-split", default="validation", help="held-out split of a named dataset (default: "
                   "validation); text files hold out their last --eval-fraction of documents")
    p.add_argument("--eval-fraction", type=float, default=0.05)
    p.add_argument("--eval-batches", type=int, default=50, help="at most this many held-out batches per evaluation")
    p.add_argument("--max-documents", type=int, default=None, help="train on the first N documents only")
    p.add_argument("--vocab", default="bert-base-uncased", help="bert-base-uncased, bert-base-chinese or a vocab.txt")
    p.add_argument("--cased", action="store_true", help="do not lowercase (for cased vocabularies)")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32, help="per process and micro-batch")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=None, help="default: 10%% of --max-steps")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0, help="gradient clipping norm (0: none)")
    p.add_argument("--precision", choices=["bf16", "fp16", "fp32"], default=None, help="default: the best here")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--whole-word", action="store_true", help="whole-word masking")
    p.add_argument("--static-masking", action="store_true", help="the same masks every epoch")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--eval-every", type=int, default=None, help="default: at the end only")
    p.add_argument("--save-every", type=int, default=None, help="default: at the end (and on Ctrl-C) only")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", default="runs/pretrain", help="the run folder: checkpoints, history.json, loss_curve.png")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.set_defaults(run=_pretrain)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="minibert", description="BERT built piece by piece.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, device, mode and data location").set_defaults(run=_info)
    _add_pretrain(sub)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
