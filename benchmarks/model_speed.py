"""Time a training step (forward + backward) of minibert and of `transformers` on the same BERT, batch and dtype.

Both models get the same weights (minibert saves, transformers loads), the same padded batch, the same number of
threads; their steps alternate so that the machine's drift hits both alike. Two kinds of step are timed:
- "pretrain": the pre-training loss, MLM on 15% of the positions + NSP. minibert runs its MLM head only on the
  labelled positions; transformers runs it on every position (as its BertForPreTraining does).
- "logits": no labels; the loss is the mean of the full (B, T, V) MLM logits plus the NSP logits, so both models do
  exactly the same arithmetic. This compares the encoders themselves.

    python benchmarks/model_speed.py --config mini --batch 16 --seq-len 128
    python benchmarks/model_speed.py --config base --batch 8 --dtype bf16 --device cuda

Prints the median step time of each, tokens per second, the ratio transformers / minibert (above 1: minibert is
faster) and, on CUDA, the peak memory of a step. A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import torch

from minibert.model import BertConfig, BertForPreTraining

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_batch(config: BertConfig, batch: int, seq_len: int, device, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, config.vocab_size, (batch, seq_len), generator=gen)
    lengths = torch.randint(seq_len // 2, seq_len + 1, (batch,), generator=gen)
    lengths[0] = seq_len  # at least one full row, and padding in the others
    attention_mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()  # (B, T)
    ids = ids.masked_fill(attention_mask == 0, config.pad_token_id)
    token_type_ids = (torch.arange(seq_len)[None, :] >= (lengths[:, None] // 2)).long() * attention_mask
    chosen = (torch.rand(batch, seq_len, generator=gen) < 0.15) & attention_mask.bool()
    mlm_labels = ids.masked_fill(~chosen, -100)
    nsp_labels = torch.randint(0, 2, (batch,), generator=gen)
    tensors = dict(input_ids=ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                   mlm_labels=mlm_labels, nsp_labels=nsp_labels)
    return {k: v.to(device) for k, v in tensors.items()}


def minibert_step(model, b: dict, mode: str):
    if mode == "pretrain":
        out = model(b["input_ids"], b["token_type_ids"], b["attention_mask"], b["mlm_labels"], b["nsp_labels"])
        loss = out.loss
    else:
        out = model(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        loss = out.mlm_logits.float().mean() + out.nsp_logits.float().mean()
    loss.backward()


def hf_step(model, b: dict, mode: str):
    kwargs = dict(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"], attention_mask=b["attention_mask"])
    if mode == "pretrain":
        loss = model(**kwargs, labels=b["mlm_labels"], next_sentence_label=b["nsp_labels"]).loss
    else:
        out = model(**kwargs)
        loss = out.prediction_logits.float().mean() + out.seq_relationship_logits.float().mean()
    loss.backward()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(steps: dict, models: dict, device, n: int, warmup: int) -> tuple[dict, dict]:
    """Alternate the step functions n times after warm-up; median seconds per step, and CUDA peak bytes."""
    times = {name: [] for name in steps}
    peak = {}
    for name, step in steps.items():
        for _ in range(warmup):
            step()
            models[name].zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            step()
            models[name].zero_grad(set_to_none=True)
            sync(device)
            peak[name] = torch.cuda.max_memory_allocated()
    for _ in range(n):
        for name, step in steps.items():
            sync(device)
            t0 = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - t0)
            models[name].zero_grad(set_to_none=True)
    return {name: statistics.median(t) for name, t in times.items()}, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="mini", help="a BertConfig preset: tiny, mini, small, medium, base, large")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model and mode")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="the dtype of weights and activations")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's)")
    parser.add_argument("--mode", choices=["pretrain", "logits", "both"], default="both")
    args = parser.parse_args()

    import transformers

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    config = BertConfig.preset(args.config)
    torch.manual_seed(0)
    ours = BertForPreTraining(config)  # dropout stays on (train mode) in both: this is a training step
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.save_pretrained(folder)
        theirs = transformers.BertForPreTraining.from_pretrained(folder, attn_implementation="sdpa")
    ours, theirs = ours.to(device, dtype).train(), theirs.to(device, dtype).train()
    batch = make_batch(config, args.batch, args.seq_len, device)
    n_tokens = args.batch * args.seq_len

    print(f"BERT-{args.config} (L{config.num_hidden_layers}/H{config.hidden_size}/A{config.num_attention_heads}, "
          f"{ours.num_parameters() / 1e6:.1f}M parameters), batch {args.batch} x {args.seq_len} with padding, "
          f"{args.dtype} on {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    modes = ["pretrain", "logits"] if args.mode == "both" else [args.mode]
    for mode in modes:
        steps = {"minibert": lambda m=mode: minibert_step(ours, batch, m),
                 "transformers (sdpa)": lambda m=mode: hf_step(theirs, batch, m)}
        models = {"minibert": ours, "transformers (sdpa)": theirs}
        seconds, peak = time_steps(steps, models, device, args.steps, args.warmup)
        print(f"\n{mode}: forward + backward, median of {args.steps} steps")
        for name, s in seconds.items():
            memory = f", peak {peak[name] / 2**20:.0f} MiB" if name in peak else ""
            print(f"  {name:20s} {s * 1e3:9.1f} ms/step  {n_tokens / s:10.0f} tokens/s{memory}")
        ratio = seconds["transformers (sdpa)"] / seconds["minibert"]
        verdict = "minibert faster" if ratio >= 1 else "minibert slower"
        print(f"  ratio transformers / minibert: {ratio:.2f} ({verdict})")


if __name__ == "__main__":
    main()
