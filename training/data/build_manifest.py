"""`python -m training.data.build_manifest --source covid|kermany|jsrt|mimic|nih --root DIR --out FILE`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from training.data.manifest import write_manifest
from training.data.sources.registry import SOURCE_KINDS


def main(argv: list[str] | None = None) -> int:
    """Write one source's manifest; prints the per-split counts on stdout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, choices=sorted(SOURCE_KINDS))
    parser.add_argument("--root", required=True, type=Path, help="folder of the data set")
    parser.add_argument("--out", required=True, type=Path, help="JSONL manifest to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # every view: lateral films are kept in manifests and refused where they are used
    records = SOURCE_KINDS[args.source].read(args.root, False)
    write_manifest(records, args.out)
    counts = Counter(record.split for record in records)
    sys.stdout.write(" ".join(f"{split}={count}" for split, count in sorted(counts.items())) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
