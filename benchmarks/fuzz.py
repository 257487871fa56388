"""The fuzzer's long run: tests/test_fuzz.py's properties with fresh random examples
(hypothesis's `long` profile, 3,000 examples a property unless --examples says otherwise, a
tenth of that for tiny renders), instead of the suite's derandomized 3 to 120. Prints
pytest's summary and the wall time.

    python benchmarks/fuzz.py                 # every property, 3,000 examples each
    python benchmarks/fuzz.py --examples 500 -k storyboard
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=3000, help="examples per property")
    parser.add_argument("-k", default="", help="only the properties whose names match (pytest -k)")
    args = parser.parse_args()
    env = {**os.environ, "FRAMEGEN_FUZZ_EXAMPLES": str(args.examples)}
    command = [sys.executable, "-m", "pytest", "-q", "tests/test_fuzz.py"]
    command += ["-k", args.k] if args.k else []
    start = time.perf_counter()
    code = subprocess.run(command, cwd=ROOT, env=env).returncode
    print(f"fuzz: {args.examples} examples a property, exit {code}, {time.perf_counter() - start:.0f} s wall")
    return code


if __name__ == "__main__":
    sys.exit(main())
