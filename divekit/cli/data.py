"""`divekit data download NAME | verify | dir`: the dataset files in the data folder."""

from __future__ import annotations

from .common import print_json


def add_parser(sub) -> None:
    """Register `divekit data` and its actions."""
    d = sub.add_parser("data", help="download or verify dataset files")
    dsub = d.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    data_dir = "dataset cache folder (default: $DIVEKIT_DATA or ~/.cache/divekit/data)"
    dl = dsub.add_parser("download", help="download a dataset's files into the data folder")
    dl.add_argument("name", help="dataset name (see `divekit list datasets`)")
    dl.add_argument("--data-dir", help=data_dir)
    dl.add_argument("--json", action="store_true", help="print the files as JSON")
    dv = dsub.add_parser("verify", help="check the hash of every dataset file present")
    dv.add_argument("--data-dir", help=data_dir)
    dv.add_argument("--json", action="store_true", help="print the report as JSON")
    dd = dsub.add_parser("dir", help="print the data folder")
    dd.add_argument("--data-dir", help=data_dir)


def run(args) -> int:
    """Run the action; `verify` exits 1 when a file has a bad hash."""
    from ..data import hub  # deferred for start-up time: loaded when the verb runs

    if args.data_verb == "dir":
        print(hub.data_dir(args.data_dir))
        return 0
    if args.data_verb == "download":
        paths = hub.fetch(args.name, args.data_dir)
        if args.json:
            print_json({"dataset": args.name, "files": [str(p) for p in paths]})
        else:
            print("\n".join(str(p) for p in paths))
        return 0
    rows = hub.verify(args.data_dir)
    bad = [r for r in rows if r[2].startswith("BAD")]
    if args.json:
        print_json({"data_dir": str(hub.data_dir(args.data_dir)),
                    "files": [dict(zip(("dataset", "path", "status"), r)) for r in rows], "bad": len(bad)})
    else:
        for dataset, path, status in rows:
            print(f"{dataset:<18s} {path:<50s} {status}")
    return 1 if bad else 0
