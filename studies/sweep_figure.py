"""Draw quantities of a sweep (``DIR/sweep.nc``) against swept parameters into a PNG.

Usage: python studies/sweep_figure.py DIR/sweep.nc --y kl_bound_lhs kl_bound_rhs --x regularization.beta
           [--x regularization.tau] [--title T] [--logy] --out figure.png
"""

from __future__ import annotations

import argparse


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_nc")
    ap.add_argument("--y", nargs="+", required=True, help="variables drawn together (first solid, others dashed)")
    ap.add_argument("--x", action="append", required=True, help="swept dotted key (repeat for more panels)")
    ap.add_argument("--title", default="")
    ap.add_argument("--logy", action="store_true")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    import xarray as xr

    from bolt.sweep.html import draw

    with xr.open_dataset(args.sweep_nc) as ds:
        fig = draw(ds.load(), args.title or ", ".join(args.y), args.y, args.x, logy=args.logy or None)
    fig.savefig(args.out, dpi=90, bbox_inches="tight")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
