"""Write the CLIP tokenizer's vocab.json and merges.txt (what transformers' CLIPTokenizer
reads) from the BPE merges file that OpenAI's CLIP published and open_clip ships
(`bpe_simple_vocab_16e6.txt.gz`, MIT). SD1.x, SD2.x and SDXL all tokenize with it.

    pip download --no-deps open_clip_torch && unzip -j open_clip_torch-*.whl '*/bpe_simple_vocab_16e6.txt.gz'
    python tools/clip_vocab.py bpe_simple_vocab_16e6.txt.gz framegen/models/configs/clip-tokenizer
"""

import argparse
import gzip
import json
from pathlib import Path

MERGES = 49152 - 256 - 2  # CLIP keeps the first 48,894 merges: a 49,408-token vocabulary


def byte_characters() -> list[str]:
    """The 256 characters byte-level BPE stands in for bytes (GPT-2's table), in the
    table's own order: printable bytes as themselves first, then the rest as chr(256 + n)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(rest))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bpe", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    lines = gzip.open(args.bpe, "rt", encoding="utf-8").read().split("\n")[1 : MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    characters = byte_characters()
    tokens = characters + [c + "</w>" for c in characters] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (args.out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    print(f"{len(tokens)} tokens, {len(merges)} merges -> {args.out}")


if __name__ == "__main__":
    main()
