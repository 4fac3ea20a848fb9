"""python3 -m concbench run|list|compare [flags]: bench_runner's `run`, `list` and `compare`,
from Python, writing and reading the same report. The flags are bench_runner's; one difference: without --models the cpython.* models
run (add C++ models with --models). Exit codes: 0 every cell verified, 1 some cell failed or
timed out (the report says which), 2 bad input, with one line on stderr."""

import argparse
import json
import os
import sys
import time

import concbench
from concbench import models as _models


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write("concbench: %s\n" % message)
        sys.exit(2)


def _parser():
    p = _Parser(prog="python3 -m concbench",
                description="concbench: which concurrency model wins, by how much, and why")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    sub.add_parser("list", help="list workloads, models, parameters and suites")
    r = sub.add_parser("run", help="run the matrix and write a JSON report")
    r.add_argument("--suite", help="smoke | quick | full (default quick)")
    r.add_argument("--workloads", help="comma-separated workload names")
    r.add_argument("--models", help="comma-separated model names (default: the cpython.* ones)")
    r.add_argument("--workers", help="comma-separated worker counts, e.g. 1,2,4")
    r.add_argument("--repetitions", help="measured repetitions per cell")
    r.add_argument("--min-time", dest="min_time", help="seconds each repetition lasts at least")
    r.add_argument("--timeout", help="seconds per cell before it is cancelled and recorded")
    r.add_argument("--param", action="append", default=[], help="key=value (repeatable)")
    r.add_argument("--scaling", help="strong (default) or weak")
    r.add_argument("--checkpoint", help="gil_threads: backedge or per_instruction")
    r.add_argument("--switch-interval-us", dest="switch_interval_us",
                   help="gil_threads and cpython.threading: switch interval in microseconds")
    r.add_argument("--pin", help="pinned_pool: compact | scatter | list:0,2,4")
    r.add_argument("--seed", help="seed of the task generator")
    r.add_argument("--out", help="report path (default results/python-<version>-<time>.json)")
    r.add_argument("--overwrite", action="store_true", help="replace the --out file if it exists")
    r.add_argument("--interleave", action="store_true",
                   help="run repetition r of every cell before repetition r+1 of any")
    c = sub.add_parser("compare", help="compare reports cell by cell: NEW (and MORE) against BASE")
    c.add_argument("reports", nargs="+", help="BASE.json NEW.json [MORE.json ...]")
    c.add_argument("--normalize", action="store_true",
                   help="divide each report by its own serial baseline per workload")
    c.add_argument("--fail-on-regression", dest="fail_on_regression", type=float,
                   help="PCT: exit 1 on a significant slowdown beyond PCT or a newly failing cell")
    c.add_argument("--format", choices=("text", "md", "json"), default="text")
    c.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    v = sub.add_parser("verdict", help="which model wins each workload, by how much, and why")
    v.add_argument("report", help="REPORT.json")
    v.add_argument("--format", choices=("text", "md", "json"), default="text")
    return p


def _request(args):
    req = {}
    for key in ("suite", "workloads", "models", "workers", "repetitions", "min_time", "timeout",
                "scaling", "checkpoint", "switch_interval_us", "pin", "seed"):
        value = getattr(args, key)
        if value is not None:
            req[key] = value
    if args.param:
        req["params"] = args.param
    if args.interleave:
        req["interleave"] = True
    if "models" not in req:
        req["models"] = _models.names()
    return req


def _default_out():
    os.makedirs("results", exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return "results/python-%d.%d-%s.json" % (sys.version_info[0], sys.version_info[1], stamp)


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "list":
        cat = concbench.catalog()
        for section in ("workloads", "models"):
            print(section + ":")
            for item in cat[section]:
                print("  %s: %s" % (item["name"], item["description"]))
                for p in item["params"]:
                    print("      %s = %s  %s" % (p["name"], p["default"], p["help"]))
        print("suites: " + " ".join(cat["suites"]) + " (default: quick)")
        return 0
    if args.command == "compare":
        if len(args.reports) < 2:
            sys.stderr.write("concbench: compare: give BASE.json NEW.json [MORE.json ...]\n")
            return 2
        if args.fail_on_regression is not None and args.fail_on_regression < 0:
            sys.stderr.write("concbench: --fail-on-regression: must be >= 0\n")
            return 2
        if not 0 < args.alpha <= 0.5:
            sys.stderr.write("concbench: --alpha: must be in (0, 0.5]\n")
            return 2
        try:
            text, code = concbench._compare(args.reports, args.normalize, args.fail_on_regression,
                                            args.alpha, args.format)
        except concbench.ReportError as e:
            sys.stderr.write("concbench: compare: %s\n" % str(e).replace("\n", " "))
            return 2
        sys.stdout.write(text)
        return code
    if args.command == "verdict":
        try:
            text = concbench.verdict(args.report, args.format)
        except concbench.ReportError as e:
            sys.stderr.write("concbench: verdict: %s\n" % str(e).replace("\n", " "))
            return 2
        sys.stdout.write(json.dumps(text, indent=2) + "\n" if args.format == "json" else text)
        return 0
    if args.command != "run":
        _parser().print_help()
        return 2
    req = _request(args)
    out = args.out or _default_out()
    try:
        concbench.validate(req)
        report = concbench.run(req, out=out, progress=True, overwrite=args.overwrite)
    except concbench.UsageError as e:
        sys.stderr.write("concbench: %s\n" % e)
        return 2
    sys.stdout.write(concbench.format_table(report))
    sys.stdout.write("verdict:\n" + concbench.verdict(report, "text"))
    print("report: " + out)
    bad = sum(1 for c in report["results"] if c["status"] != "ok")
    if bad:
        print("%d cell(s) did not verify or did not finish; see status in the report" % bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
