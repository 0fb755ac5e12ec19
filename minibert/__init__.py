"""minibert: BERT built piece by piece, the package behind the course's lessons.

One module per concept, named as the lessons name them:
- `runtime`: seeding, device, precision, the quick/full switch (every lesson)
- `data`: datasets and corpora, local copy or the Hugging Face hub
- `tokenizer` (lesson 01), `embeddings` (02), `attention` (03), `model` (04),
  `pretraining_data` (05), `pretraining` (06), `finetuning` and `metrics` (07-10)
- `checks`: the checkers that exercise notebooks call
"""

__version__ = "0.1.0"
