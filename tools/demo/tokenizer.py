"""Builds the demo CLIPTokenizer files: a byte-level CLIP vocabulary plus BPE merges that
make every grammar word of `scenes.py` a single token. Any other text still tokenizes
(unknown words split into characters)."""

from __future__ import annotations

import json
from pathlib import Path

from .scenes import GRAMMAR_WORDS

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's / GPT-2's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's BPE of one word: repeatedly merge the best-ranked adjacent pair."""
    parts = list(word[:-1]) + [word[-1] + "</w>"]
    while len(parts) > 1:
        pairs = [(ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
        rank, _ = min(pairs)
        if rank == 1 << 30:
            break
        first, second = next((parts[i], parts[i + 1]) for r, i in pairs if r == rank)
        merged, i = [], 0
        while i < len(parts):
            if i < len(parts) - 1 and parts[i] == first and parts[i + 1] == second:
                merged.append(first + second)
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts


def build_merges(words=GRAMMAR_WORDS) -> list[tuple[str, str]]:
    """Adds merges (each new one at the lowest priority) until every word is one token.
    A merge added later never changes an earlier word, which is already one token."""
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        while len(parts := _bpe(word, ranks)) > 1:
            pair = (parts[0], parts[1])
            ranks[pair] = len(merges)
            merges.append(pair)
    return merges


def write_tokenizer_files(directory: Path, words=GRAMMAR_WORDS) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = list(bytes_to_unicode().values())
    merges = build_merges(words)
    tokens = base + [c + "</w>" for c in base] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def build_tokenizer(directory: Path, max_length: int):
    from transformers import CLIPTokenizer

    write_tokenizer_files(directory)
    tok = CLIPTokenizer.from_pretrained(str(directory), model_max_length=max_length)
    return tok
