"""Fine-tuning data, lessons 07-10: what each task's examples become before the model sees them, and back.

What it does:
- `TaskDataset`: encoded items plus what evaluation needs; `collate` pads each batch to its own longest item
  (dynamic padding).
- `encode_classification`: `[CLS] sentence [SEP]`, or `[CLS] A [SEP] B [SEP]` with segment ids 0/1 for pairs; labels
  outside the label set are an error that names them.
- `encode_similarity`: a pair and its similarity score in [0, 1], the float label of a regression head.
- `align_labels` and `encode_ner`: one label per word becomes one label per token: the word's label on its first
  sub-word, -100 (ignored by the loss) on the others and on special tokens.
- `prepare_qa_features`: question + context in windows of `max_length` tokens that overlap by `stride`, the answer
  as start/end token positions (at [CLS] in a window without it); answers that are not where their
  `answer_start` says are counted, reported and skipped.
- `best_span`: the highest-scoring legal span (start <= end, inside the context, at most `max_answer_length` tokens);
  `postprocess_qa`: the best span of each question over its windows, as context text, through the offsets.

What it leaves out: SQuAD v2's unanswerable questions, multiple-choice inputs, and sequence packing.

Shapes: T sequence length, K number of labels.
"""

from __future__ import annotations

import torch

from minibert.model import IGNORE_INDEX


class TaskDataset(torch.utils.data.Dataset):
    """Encoded items (dicts of lists) plus what evaluation needs (`labels`, `records`, `skipped`...) as attributes.
    `collate` pads a batch to its own longest item."""

    def __init__(self, items: list[dict], pad_id: int, max_length: int | None, task: str, **info):
        self.items, self.pad_id, self.max_length, self.task = items, pad_id, max_length, task
        self.labels = self.records = self.skipped = None
        self.chinese = False
        self.__dict__.update(info)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]

    def collate(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        return collate(batch, self.pad_id)


def collate(items: list[dict], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad to the longest item of the batch: input_ids with [PAD], token_type_ids 0, attention_mask 0, token labels
    -100. Returns only the model's keywords (input_ids, token_type_ids, attention_mask, labels, start/end_positions)."""
    if not items:
        raise ValueError("collate got an empty batch")
    B, T = len(items), max(len(it["input_ids"]) for it in items)
    out = {"input_ids": torch.full((B, T), pad_id, dtype=torch.long),
           "token_type_ids": torch.zeros(B, T, dtype=torch.long), "attention_mask": torch.zeros(B, T, dtype=torch.long)}
    token_labels = isinstance(items[0].get("labels"), list)
    if token_labels:
        out["labels"] = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    for row, it in enumerate(items):
        n = len(it["input_ids"])
        out["input_ids"][row, :n] = torch.tensor(it["input_ids"])
        out["token_type_ids"][row, :n] = torch.tensor(it["token_type_ids"])
        out["attention_mask"][row, :n] = 1
        if token_labels:
            out["labels"][row, :n] = torch.tensor(it["labels"])
    for key in ("labels", "start_positions", "end_positions"):
        if key in items[0] and not (key == "labels" and token_labels):
            scores = isinstance(items[0][key], float)  # a similarity score per pair, else class ids and positions
            out[key] = torch.tensor([it[key] for it in items], dtype=torch.float if scores else torch.long)  # (B,)
    return out


def encode_classification(records, tokenizer, max_length: int = 128, text_keys=("sentence",), label_key="label",
                          num_labels: int | None = None) -> TaskDataset:
    """Sentences ({"sentence", "label"}) or pairs (text_keys=("sentence1", "sentence2")) -> a TaskDataset of
    [CLS] A [SEP] (B [SEP]) with segment ids and the label. Labels must be ints in 0..num_labels-1."""
    text_keys = (text_keys,) if isinstance(text_keys, str) else tuple(text_keys)
    if not 1 <= len(text_keys) <= 2:
        raise ValueError(f"text_keys names one text or a pair, got {text_keys}")
    for n, r in enumerate(records):
        missing = [k for k in (*text_keys, label_key) if k not in r]
        if missing:
            raise KeyError(f"record {n} has no {missing[0]!r} (its keys: {sorted(r)}). For pairs use "
                           f"text_keys=('sentence1', 'sentence2'); for one sentence text_keys=('sentence',).")
    labels = [r[label_key] for r in records]
    if num_labels is None:
        num_labels = max((x for x in labels if isinstance(x, int)), default=0) + 1
    _check_class_labels(labels, num_labels)
    texts = [r[text_keys[0]] for r in records]
    pairs = [r[text_keys[1]] for r in records] if len(text_keys) == 2 else None
    encodings = tokenizer.encode_batch(texts, pairs, max_length=max_length) if records else []
    items = [{"input_ids": e.ids, "token_type_ids": e.type_ids, "labels": y} for e, y in zip(encodings, labels)]
    return TaskDataset(items, tokenizer.pad_id, max_length, "classification", labels=list(range(num_labels)),
                       records=list(records))


def encode_similarity(records, tokenizer, max_length: int = 128, text_keys=("sentence1", "sentence2"),
                      score_key: str = "score") -> TaskDataset:
    """Pairs with a similarity score in [0, 1] ({"sentence1", "sentence2", "score"}) -> a TaskDataset of
    [CLS] A [SEP] B [SEP] whose label is the score, a float, for a regression head (num_labels=1, MSE)."""
    text_keys = tuple(text_keys)
    if len(text_keys) != 2:
        raise ValueError(f"text_keys names the two sentences of a pair, got {text_keys}")
    scores = []
    for n, r in enumerate(records):
        missing = [k for k in (*text_keys, score_key) if k not in r]
        if missing:
            raise KeyError(f"record {n} has no {missing[0]!r} (its keys: {sorted(r)}). A similarity record is "
                           f"{{'sentence1', 'sentence2', 'score'}}; for class labels use encode_classification.")
        y = r[score_key]
        if isinstance(y, bool) or not isinstance(y, (int, float)) or not 0 <= y <= 1:
            raise ValueError(f"record {n} has score {y!r}, outside 0..1. STS-B's 0-5 scores are divided by 5 by "
                             f"load_dataset('stsb'); divide yours by their largest possible value.")
        scores.append(float(y))
    encodings = (tokenizer.encode_batch([r[text_keys[0]] for r in records], [r[text_keys[1]] for r in records],
                                        max_length=max_length) if records else [])
    items = [{"input_ids": e.ids, "token_type_ids": e.type_ids, "labels": y} for e, y in zip(encodings, scores)]
    return TaskDataset(items, tokenizer.pad_id, max_length, "similarity", labels=["similarity"],
                       records=list(records))


def _check_class_labels(labels, num_labels: int) -> None:
    for n, y in enumerate(labels):
        if not isinstance(y, int) or isinstance(y, bool) or not 0 <= y < num_labels:
            hint = " (GLUE test sets hide their labels as -1: evaluate on 'validation')" if y == -1 else ""
            raise ValueError(f"record {n} has label {y!r}, outside the label set 0..{num_labels - 1} "
                             f"(num_labels={num_labels}){hint}. Fix the record, or pass the right num_labels.")


def align_labels(word_ids, word_labels, label_to_id: dict) -> list[int]:
    """One label id per token: the label of its word on the first sub-word of each word, -100 on the other sub-words
    and on special tokens (word id None). `word_ids[t]` is the index in `word_labels` of token t's word."""
    out, previous = [], None
    for w in word_ids:
        if w is None or w == previous:
            out.append(IGNORE_INDEX)
        else:
            tag = word_labels[w]
            if tag not in label_to_id:
                raise ValueError(f"label {tag!r} (word {w}) is not in the label set {list(label_to_id)}")
            out.append(label_to_id[tag])
        previous = w
    return out


def word_ids_from_offsets(words: list[str], offsets, special) -> list[int | None]:
    """For the text " ".join(words): the index of the word each token comes from (None for special tokens), read
    from the tokens' character offsets. `special[t]` is True for [CLS], [SEP] and padding."""
    owner = []
    for i, word in enumerate(words):
        owner += [i] * len(word) + [None]  # the joining space belongs to no word
    return [None if is_special else owner[start] for (start, _), is_special in zip(offsets, special)]


def encode_ner(records, tokenizer, label_list, max_length: int = 128) -> TaskDataset:
    """Sentences of words with BIO tags ({"tokens", "ner_tags"}) -> a TaskDataset with one label per token.

    The words are joined with spaces and encoded once; each token's word is found from its character offsets, so
    words that the tokenizer splits further ('U.S.' -> u . s .) keep one label, Chinese characters stay one word
    each, and words that give no token at all (a lone control character) or that fall beyond max_length are never
    predicted: evaluation then counts them as 'O'."""
    label_list = list(label_list)
    label_to_id = {x: i for i, x in enumerate(label_list)}
    for n, r in enumerate(records):
        if len(r["tokens"]) != len(r["ner_tags"]):
            raise ValueError(f"record {n} has {len(r['tokens'])} words but {len(r['ner_tags'])} tags")
        unknown = [t for t in r["ner_tags"] if t not in label_to_id]
        if unknown:
            raise ValueError(f"record {n} has the tag {unknown[0]!r}, which is not in the label set {label_list}. "
                             f"Add it to label_list (or fix the data).")
    texts = [" ".join(r["tokens"]) for r in records]
    encodings = tokenizer.encode_batch(texts, max_length=max_length) if records else []
    items = []
    for r, e in zip(records, encodings):
        word_ids = word_ids_from_offsets(r["tokens"], e.offsets, [w is None for w in e.word_ids])
        labels = align_labels(word_ids, r["ner_tags"], label_to_id)
        words = [w for w, y in zip(word_ids, labels) if y != IGNORE_INDEX]  # the word of each scored token
        items.append({"input_ids": e.ids, "token_type_ids": e.type_ids, "labels": labels, "words": words})
    return TaskDataset(items, tokenizer.pad_id, max_length, "ner", labels=label_list, records=list(records))


def _answer_tokens(offsets, start_char: int, end_char: int) -> tuple[int, int] | None:
    """First and last context token that overlap the characters [start_char, end_char), or None."""
    inside = [i for i, (s, e) in enumerate(offsets) if s < end_char and e > start_char]
    return (inside[0], inside[-1]) if inside else None


def _looks_chinese(records) -> bool:
    from minibert.wordpiece import is_chinese_char

    text = "".join(r["context"] for r in records[:50]).replace(" ", "")
    return bool(text) and sum(map(is_chinese_char, text)) > 0.3 * len(text)


def prepare_qa_features(records, tokenizer, max_length: int = 384, stride: int = 128, max_query_length: int = 64,
                        training: bool = True, chinese: bool | None = None, verbose: bool = True) -> TaskDataset:
    """SQuAD-style records -> features [CLS] question [SEP] window of the context [SEP].

    A context longer than the window is split into windows that overlap by `stride` tokens (the Hugging Face meaning
    of stride; Google's run_squad.py calls the step between windows doc_stride). Each feature keeps `offsets` (the
    character span in the context of each token, None outside the context) and `example` (the record's index).
    start/end_positions are the first answer's first and last token, or 0 ([CLS]) when it is not inside the window.

    An answer that is not at its answer_start in the context (or a record with no answer) is counted and listed in
    `.skipped` as (record index, reason); with training=True such records are left out, otherwise they are kept (an
    evaluation scores every question by its answer texts).
    """
    records = list(records)
    questions = tokenizer.encode_batch([r["question"] for r in records], add_special_tokens=False) if records else []
    contexts = tokenizer.encode_batch([r["context"] for r in records], add_special_tokens=False) if records else []
    items, skipped = [], []
    for n, (r, q, c) in enumerate(zip(records, questions, contexts)):
        answer, reason = None, None
        texts, starts = r["answers"]["text"], r["answers"]["answer_start"]
        if not texts:
            reason = "no answer"
        elif r["context"][starts[0]:starts[0] + len(texts[0])] != texts[0]:
            reason = (f"answer {texts[0][:40]!r} is not at answer_start={starts[0]} (the context has "
                      f"{r['context'][max(starts[0], 0):max(starts[0], 0) + len(texts[0])][:40]!r} there)")
        else:
            answer = _answer_tokens(c.offsets, starts[0], starts[0] + len(texts[0]))
            reason = None if answer else f"answer {texts[0][:40]!r} gives no token"
        if reason:
            skipped.append((n, reason))
            if training:
                continue
        q_ids = q.ids[:max_query_length]
        budget = max_length - len(q_ids) - 3  # context tokens per window
        if budget <= stride:
            raise ValueError(f"max_length={max_length} leaves {budget} context tokens after the {len(q_ids)} of "
                             f"question {n}, not more than stride={stride}: the windows would not advance. Use a "
                             f"smaller stride or max_query_length, or a larger max_length.")
        lead = len(q_ids) + 2  # [CLS] question [SEP]
        ids, offsets = c.ids, c.offsets
        start = 0
        while True:
            end = min(start + budget, len(ids))
            item = {"input_ids": [tokenizer.cls_id, *q_ids, tokenizer.sep_id, *ids[start:end], tokenizer.sep_id],
                    "token_type_ids": [0] * lead + [1] * (end - start + 1),
                    "offsets": [None] * lead + [tuple(o) for o in offsets[start:end]] + [None], "example": n,
                    "start_positions": 0, "end_positions": 0}
            if answer and start <= answer[0] and answer[1] < end:
                item["start_positions"], item["end_positions"] = answer[0] - start + lead, answer[1] - start + lead
            items.append(item)
            if end >= len(ids):
                break
            start += budget - stride
    if skipped and verbose:
        what = "left out" if training else "kept for scoring by their answer texts"
        print(f"prepare_qa_features: {len(skipped)} of {len(records)} examples have no usable answer; {what}. "
              f"First: record {skipped[0][0]} (id {records[skipped[0][0]]['id']!r}): {skipped[0][1]}.")
    chinese = _looks_chinese(records) if chinese is None else chinese
    return TaskDataset(items, tokenizer.pad_id, max_length, "qa", records=records, skipped=skipped, chinese=chinese)


# ---------------------------------------------------------------------------------------------------- answers


def best_span(start_logits, end_logits, offsets, max_answer_length: int = 30, n_best: int | None = None):
    """(start, end, score) of the best legal span, or None when there is none.

    Legal: start <= end, both tokens inside the context (offsets[t] is not None), end - start + 1 <= max_answer_length.
    score = start_logits[start] + end_logits[end]. n_best=None searches every pair (a T x T table, cheap); an int
    looks only among the n_best highest start and end logits, as Google's and Hugging Face's scripts do.
    """
    T = len(offsets)
    s = torch.as_tensor(start_logits, dtype=torch.float32).flatten()[:T]  # (T,)
    e = torch.as_tensor(end_logits, dtype=torch.float32).flatten()[:T]  # (T,)
    if len(s) < T or len(e) < T:
        raise ValueError(f"{len(offsets)} offsets but only {min(len(s), len(e))} logits: pass one logit per token")
    context = torch.tensor([o is not None for o in offsets])  # (T,)
    i = torch.arange(T)
    length = i[None, :] - i[:, None] + 1  # (T, T): end - start + 1
    legal = context[:, None] & context[None, :] & (length >= 1) & (length <= max_answer_length)
    if n_best is not None:
        top = lambda x: torch.zeros(T, dtype=torch.bool).index_fill_(0, x.topk(min(n_best, T)).indices, True)
        legal &= top(s)[:, None] & top(e)[None, :]
    if not legal.any():
        return None
    scores = (s[:, None] + e[None, :]).masked_fill(~legal, float("-inf"))  # (T, T)
    flat = int(scores.argmax())
    return flat // T, flat % T, float(scores.view(-1)[flat])


def postprocess_qa(features, start_logits, end_logits, examples=None, max_answer_length: int = 30,
                   n_best: int | None = None) -> dict[str, str]:
    """{example id: answer text}: the best legal span over all of an example's windows, cut out of its context
    through the offsets; '' when no window has a legal span. start/end_logits: one (T_i,) per feature."""
    examples = examples if examples is not None else features.records
    best: dict[int, tuple[float, str]] = {}
    for feature, s, e in zip(features, start_logits, end_logits):
        span = best_span(s, e, feature["offsets"], max_answer_length, n_best)
        n = feature["example"]
        if span is not None and (n not in best or span[2] > best[n][0]):
            offsets = feature["offsets"]
            best[n] = (span[2], examples[n]["context"][offsets[span[0]][0]:offsets[span[1]][1]])
    return {ex["id"]: best[n][1] if n in best else "" for n, ex in enumerate(examples)}
