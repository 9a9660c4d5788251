"""Statistics of I-JEPA's multi-block masks on a patch grid: what a context and its targets cover.

    python scripts/mask_stats.py --grid 8 --mode unbiased --min-keep 3 --batch 128 --steps 50
    python scripts/mask_stats.py --grid 16 --mode official --batch 2048 --world 16 --steps 4   # ViT-H/14

Prints, over `steps` batches: the mean context length after truncation (patches and share of
the grid), the mean target length, how many positions ever appear in a context and in a
target, and the mean number of 4-connected pieces of a truncated context.
"""

import argparse
import json

from ijepa.config import MaskConfig
from ijepa.masks import mask_statistics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=int, default=8)
    parser.add_argument("--mode", default="unbiased")
    parser.add_argument("--truncate", default="process")
    parser.add_argument("--min-keep", type=int, default=3, help="3 for 7x7-8x8 grids, 10 (official) for 16x16")
    parser.add_argument("--num-targets", type=int, default=4)
    parser.add_argument("--batch", type=int, default=128, help="global batch")
    parser.add_argument("--world", type=int, default=1, help="processes sharing the batch")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    cfg = MaskConfig(mode=args.mode, truncate=args.truncate, min_keep=args.min_keep, num_targets=args.num_targets)
    print(json.dumps(mask_statistics((args.grid, args.grid), cfg, args.batch, args.steps, args.world)))


if __name__ == "__main__":
    main()
