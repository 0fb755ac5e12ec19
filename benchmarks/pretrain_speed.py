"""Pre-training speed: a full training step of minibert against `transformers` on the same BERT, data and hardware.

A step is what `minibert.training.Trainer` does: forward in the chosen precision (autocast), MLM + NSP loss,
backward, gradient clipping, AdamW update (fused on CUDA), zero_grad; fp16 goes through a gradient scaler. Both
models start from the same weights (minibert saves, `transformers.BertForPreTraining` loads with SDPA attention)
and see the same batches: real WikiText-2 pairs from `minibert.pretraining_data`, padded to the longest of each
batch (at most --seq-len). Steps alternate between the two models so that the machine's drift hits both alike.

    python benchmarks/pretrain_speed.py --config mini --batch 32 --seq-len 128
    python benchmarks/pretrain_speed.py --config base --batch 64 --dtype bf16      # on a GPU

Prints, for each: median step time, tokens/s (real tokens, padding not counted), peak memory (CUDA) and MFU (model
FLOPs utilisation, on GPUs whose peak is known; the same model FLOPs are counted for both, so the extra work
transformers does on unmasked positions is not credited), then the ratio minibert / transformers (above 1: minibert
is faster). The goal: at least 1.3x on a GPU and 1.1x on the CPU. Where minibert's lead comes from: its MLM decoder
(V x C, the largest matrix multiply of a small BERT) runs on the 15% masked positions only, and one fused Linear
computes q, k and v. A benchmark, not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import torch

from minibert import data
from minibert.corpus import documents_from_lines
from minibert.model import BertConfig, BertForPreTraining
from minibert.optimizer import build_optimizer
from minibert.pretraining_data import PretrainingDataset
from minibert.runtime import pick_device, pick_precision
from minibert.speed import flops_per_token, peak_flops
from minibert.tokenizer import WordPieceTokenizer


def make_batches(n: int, batch_size: int, seq_len: int, seed: int = 0) -> list[dict]:
    tok = WordPieceTokenizer.from_vocab_file(data.vocab_file("bert-base-uncased"))
    docs = documents_from_lines(data.load_dataset("wikitext-2", "validation"))
    ds = PretrainingDataset(docs, tok, max_length=seq_len, seed=seed, static_masking=True)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(ds), generator=g).tolist()
    return [ds.collate([ds[i] for i in order[k * batch_size:(k + 1) * batch_size]]) for k in range(n)]


class Stepper:
    """One model, its optimizer and scaler, and a training step on a batch."""

    def __init__(self, model, precision, device, hf: bool, clip: float = 1.0):
        self.model, self.precision, self.device, self.hf, self.clip = model, precision, device, hf, clip
        self.optimizer = build_optimizer(model, lr=1e-4, weight_decay=0.01)
        self.scaler = precision.grad_scaler(device)

    def __call__(self, batch: dict) -> float:
        with self.precision.autocast(self.device):
            if self.hf:
                out = self.model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                                 attention_mask=batch["attention_mask"], labels=batch["mlm_labels"],
                                 next_sentence_label=batch["nsp_labels"])
            else:
                out = self.model(**batch)
        self.scaler.scale(out.loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return out.loss.detach()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="mini", help="a BertConfig preset: tiny, mini, small, medium, base, large")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dtype", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                        help="training precision (autocast); auto: bf16 on recent GPUs, fp16 on a T4, fp32 on CPU")
    parser.add_argument("--device", default=None, help="default: cuda, else mps, else cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's)")
    args = parser.parse_args()

    import transformers

    device = pick_device(args.device)
    precision = pick_precision(device, None if args.dtype == "auto" else args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = BertConfig.preset(args.config)
    torch.manual_seed(0)
    ours = BertForPreTraining(config)  # dropout on (train mode) in both: this is a training step
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.save_pretrained(folder)
        theirs = transformers.BertForPreTraining.from_pretrained(folder, attn_implementation="sdpa")
    steppers = {"minibert": Stepper(ours.to(device).train(), precision, device, hf=False),
                "transformers (sdpa)": Stepper(theirs.to(device).train(), precision, device, hf=True)}
    n_batches = args.warmup + args.steps
    batches = [{k: v.to(device) for k, v in b.items()} for b in make_batches(n_batches, args.batch, args.seq_len)]
    tokens = [b["attention_mask"].sum().item() for b in batches]
    padded = [b["attention_mask"].numel() for b in batches]

    print(f"BERT-{args.config} (L{config.num_hidden_layers}/H{config.hidden_size}/A{config.num_attention_heads}, "
          f"{ours.num_parameters() / 1e6:.1f}M parameters), batch {args.batch} x <= {args.seq_len} WikiText-2 pairs "
          f"({100 * (1 - sum(tokens) / sum(padded)):.1f}% padding), {precision.name} on {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, transformers {transformers.__version__}")
    times = {name: [] for name in steppers}
    peak = {}
    for name, step in steppers.items():  # warm-up, and peak memory of one step
        for b in batches[:args.warmup]:
            step(b)
        if device.type == "cuda":
            sync(device)
            torch.cuda.reset_peak_memory_stats(device)
            step(batches[0])
            sync(device)
            peak[name] = torch.cuda.max_memory_allocated(device)
    for b in batches[args.warmup:]:
        for name, step in steppers.items():
            sync(device)
            t0 = time.perf_counter()
            step(b)
            sync(device)
            times[name].append(time.perf_counter() - t0)
    step_tokens = statistics.mean(tokens[args.warmup:])
    fpt = flops_per_token(ours, args.seq_len)
    peak_fl = peak_flops(device, precision.name)
    print(f"\nfull training step (forward, backward, clip, AdamW), median of {args.steps} steps")
    speed = {}
    for name, t in times.items():
        s = statistics.median(t)
        speed[name] = step_tokens / s
        extra = f"  peak {peak[name] / 2**20:8.0f} MiB" if name in peak else ""
        if peak_fl:
            extra += f"  MFU {100 * speed[name] * fpt / peak_fl:5.1f}%"
        print(f"  {name:20s} {s * 1e3:9.1f} ms/step  {speed[name]:10.0f} tokens/s{extra}")
    ratio = speed["minibert"] / speed["transformers (sdpa)"]
    goal = 1.3 if device.type == "cuda" else 1.1
    print(f"  ratio minibert / transformers: {ratio:.2f}x (goal {goal}x: {'met' if ratio >= goal else 'not met'})")


if __name__ == "__main__":
    main()
