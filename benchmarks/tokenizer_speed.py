"""How fast is minibert's tokenizer? The pure-Python encoder, the fast path and raw `tokenizers`, on the same text.

    python benchmarks/tokenizer_speed.py                       # WikiText-2 valid+test, bert-base-uncased
    python benchmarks/tokenizer_speed.py --repeat 5 --threads 1
    python benchmarks/tokenizer_speed.py --skip-training --lines 2000

Prints one table (MB/s of UTF-8 text, and the ratio to raw `tokenizers`):
- `minibert encode (pure Python)`: `WordPieceTokenizer.encode`, one text at a time, offsets included;
- `transformers slow BertTokenizer`: the pure-Python reference the encoder should at least match (token ids only);
- `minibert encode_batch (fast path)`: `WordPieceTokenizer.encode_batch`, minibert `Encoding`s out;
- `minibert .fast.encode_batch`: the `tokenizers.Tokenizer` that minibert builds, as later lessons call it;
- `tokenizers BertWordPieceTokenizer`: raw `tokenizers` batch encoding, the target for the fast path (within 10%);
and the time to train an 8,000-token vocab on the same text (pure Python, one core).
Set MINIBERT_DATA to the course data folder. `--threads` sets RAYON_NUM_THREADS for the Rust side.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time


def best_of(fn, repeat: int) -> float:
    """The best wall time of `repeat` runs (the least disturbed by other work on the machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", default="bert-base-uncased", choices=["bert-base-uncased", "bert-base-chinese"])
    parser.add_argument("--lines", type=int, default=None, help="use only the first N lines")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    parser.add_argument("--threads", type=int, default=None, help="RAYON_NUM_THREADS for tokenizers (default: all)")
    parser.add_argument("--train-vocab-size", type=int, default=8000)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-slow", action="store_true", help="skip transformers' slow tokenizer")
    args = parser.parse_args(argv)
    if args.threads is not None:
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # before tokenizers starts its thread pool

    from tokenizers import BertWordPieceTokenizer

    from minibert.data import load_dataset, vocab_file
    from minibert.tokenizer import WordPieceTokenizer, train_wordpiece

    lines = [r["text"] for r in load_dataset("wikitext-2", "validation") + load_dataset("wikitext-2", "test")]
    lines = lines[:args.lines] if args.lines else lines
    megabytes = sum(len(line.encode("utf-8")) for line in lines) / 1e6
    lowercase = args.vocab != "bert-base-chinese"
    path = str(vocab_file(args.vocab))
    tok = WordPieceTokenizer.from_vocab_file(path, lowercase=lowercase)
    raw = BertWordPieceTokenizer(path, lowercase=lowercase)

    # warm up: caches, thread pools, the punctuation regex
    tok.encode_batch(lines[:100])
    raw.encode_batch(lines[:100])
    for line in lines[:100]:
        tok.encode(line)

    rows = [("minibert encode (pure Python)", best_of(lambda: [tok.encode(t) for t in lines], args.repeat))]
    if not args.skip_slow:
        try:
            from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as Slow
        except ImportError:  # transformers 4
            from transformers import BertTokenizer as Slow
        slow = Slow(path, do_lower_case=lowercase)
        rows.append(("transformers slow BertTokenizer", best_of(lambda: [slow.encode(t) for t in lines], args.repeat)))
    rows.append(("minibert encode_batch (fast path)", best_of(lambda: tok.encode_batch(lines), args.repeat)))
    rows.append(("minibert .fast.encode_batch", best_of(lambda: tok.fast.encode_batch(lines), args.repeat)))
    rows.append(("tokenizers BertWordPieceTokenizer", best_of(lambda: raw.encode_batch(lines), args.repeat)))

    threads = os.environ.get("RAYON_NUM_THREADS", f"all {os.cpu_count()}")
    print(f"text: WikiText-2 valid+test, {len(lines)} lines, {megabytes:.2f} MB; vocab {args.vocab}; "
          f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"tokenizers threads: {threads}; best of {args.repeat}")
    raw_seconds = rows[-1][1]
    print(f"{'encoder':<36}{'seconds':>9}{'MB/s':>9}{'vs raw':>9}")
    for name, seconds in rows:
        print(f"{name:<36}{seconds:>9.3f}{megabytes / seconds:>9.2f}{raw_seconds / seconds:>9.2f}")
    fast_ratio = rows[-2][1] / raw_seconds
    batch_ratio = rows[-3][1] / raw_seconds
    print(f"fast path time / raw tokenizers time: .fast {fast_ratio:.3f}, encode_batch {batch_ratio:.3f} "
          "(target: within 1.10)")
    if not args.skip_slow:
        print(f"pure-Python encoder / transformers slow tokenizer speed: {rows[1][1] / rows[0][1]:.2f}x "
              "(target: >= 1)")

    if not args.skip_training:
        times = []
        for _ in range(max(1, min(args.repeat, 2))):
            start = time.perf_counter()
            trained = train_wordpiece(lines, args.train_vocab_size)
            times.append(time.perf_counter() - start)
        print(f"train_wordpiece: {len(trained)} tokens from {megabytes:.2f} MB in {statistics.median(times):.2f} s "
              "(median; pure Python, one core; target: under 60 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
