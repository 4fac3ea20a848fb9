"""python3 -m concbench run|list|compare|bench [flags]: bench_runner's `run`, `list` and
`compare`, from Python, writing and reading the same report; `bench MODULE:FUNCTION` runs your
function under every cpython.* model (concbench.bench). The flags are bench_runner's; one difference: without --models the cpython.* models
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
    r.add_argument("--gil-policy", dest="gil_policy",
                   help="gil_threads: 3.1 | 3.2-3.9 | 3.10 | 3.11-3.12 (default) | 3.13+")
    r.add_argument("--checkpoint",
                   help="gil_threads: backedge or per_instruction, overriding the policy's")
    r.add_argument("--switch-interval-us", dest="switch_interval_us",
                   help="gil_threads and cpython.threading: switch interval in microseconds")
    r.add_argument("--pin", help="pinned_pool: compact | scatter | list:0,2,4")
    r.add_argument("--seed", help="seed of the task generator")
    r.add_argument("--out", help="report path (default results/python-<version>-<time>.json)")
    r.add_argument("--overwrite", action="store_true", help="replace the --out file if it exists")
    r.add_argument("--interleave", action="store_true",
                   help="run repetition r of every cell before repetition r+1 of any")
    r.add_argument("--workload-file", dest="workload_files", action="append", default=[],
                   metavar="FILE.json", help="a workload described as data (repeatable); "
                   "without --workloads the run is exactly these")
    r.add_argument("--python", dest="pythons", action="append", default=[], metavar="PATH",
                   help="another interpreter, driven over a pipe: adds py:<label>.* models")
    b = sub.add_parser("bench", help="your Python function under every cpython.* model")
    b.add_argument("function", metavar="MODULE:FUNCTION",
                   help="the function to run, fn(x) for each input x")
    src = b.add_mutually_exclusive_group()
    src.add_argument("--inputs", metavar="FILE.json",
                     help="a JSON list: one input per item (default: [None])")
    src.add_argument("--inputs-fn", dest="inputs_fn", metavar="MODULE:FUNC",
                     help="FUNC(i) gives the i-th input, for i in range(--tasks)")
    b.add_argument("--tasks", type=int, help="inputs --inputs-fn gives (default 100)")
    b.add_argument("--async-fn", dest="async_fn", metavar="MODULE:FUNC",
                   help="a coroutine function doing what FUNCTION does, for cpython.asyncio")
    b.add_argument("--check", metavar="MODULE:FUNC",
                   help="FUNC(x, result) -> bool verifies a result instead of ==")
    b.add_argument("--models", help="comma-separated cpython.* models (default: all)")
    b.add_argument("--workers", help="comma-separated worker counts (default 1,2,4)")
    b.add_argument("--repetitions", type=int, help="measured repetitions per cell (default 5)")
    b.add_argument("--min-time", dest="min_time", type=float,
                   help="seconds each repetition lasts at least (default 0.2; 0: one pass)")
    b.add_argument("--timeout", type=float, help="seconds per cell before it is cancelled")
    b.add_argument("--seed", type=int, help="seed of the run")
    b.add_argument("--out", help="report path (default results/bench-<function>-<time>.json)")
    b.add_argument("--overwrite", action="store_true", help="replace the --out file if it exists")
    c = sub.add_parser("compare", help="compare reports cell by cell: NEW (and MORE) against BASE")
    c.add_argument("reports", nargs="+", help="BASE.json NEW.json [MORE.json ...]")
    c.add_argument("--normalize", action="store_true",
                   help="divide each report by its own serial baseline per workload")
    c.add_argument("--fail-on-regression", dest="fail_on_regression", type=float,
                   help="PCT: exit 1 on a significant slowdown beyond PCT or a newly failing cell")
    c.add_argument("--fail-on-broken", dest="fail_on_broken", action="store_true",
                   help="exit 1 on a cell of BASE newly failing or missing; timings not gated")
    c.add_argument("--format", choices=("text", "md", "json"), default="text")
    c.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    c.add_argument("--min-effect", dest="min_effect", type=float,
                   help="PCT: a conclusion's interval must lie beyond 1 + PCT/100 (default 10)")
    v = sub.add_parser("verdict", help="which model wins each workload, by how much, and why")
    v.add_argument("report", help="REPORT.json")
    v.add_argument("--format", choices=("text", "md", "json"), default="text")
    return p


def _request(args):
    req = {}
    for key in ("suite", "workloads", "models", "workers", "repetitions", "min_time", "timeout",
                "scaling", "checkpoint", "gil_policy", "switch_interval_us", "pin", "seed"):
        value = getattr(args, key)
        if value is not None:
            req[key] = value
    if args.param:
        req["params"] = args.param
    if args.interleave:
        req["interleave"] = True
    if args.workload_files:
        req["workload_files"] = args.workload_files
    if args.pythons:
        req["pythons"] = args.pythons
    if "models" not in req:
        req["models"] = _models.names()
    return req


def _default_out():
    os.makedirs("results", exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return "results/python-%d.%d-%s.json" % (sys.version_info[0], sys.version_info[1], stamp)


class _BadInput(Exception):
    """A bench argument the user can fix: one line on stderr, exit 2."""


def _resolve(spec, what):
    """MODULE:NAME -> the object, importing MODULE (the current directory is importable, as it
    is for `python3 -m`)."""
    import importlib
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise _BadInput("%s: expected MODULE:NAME, got %r" % (what, spec))
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - whatever the import raised is the reason
        raise _BadInput("%s: cannot import %s: %s: %s" % (
            what, module, type(e).__name__, str(e).splitlines()[0] if str(e) else "")) from None
    obj = mod
    for part in name.split("."):
        if not hasattr(obj, part):
            raise _BadInput("%s: %s has no attribute %r" % (what, module, name))
        obj = getattr(obj, part)
    if not callable(obj):
        raise _BadInput("%s: %s is a %s, not callable" % (what, spec, type(obj).__name__))
    return obj


def _bench_main(args):
    import json
    try:
        fn = _resolve(args.function, "bench")
        if args.inputs_fn:
            inputs = _resolve(args.inputs_fn, "--inputs-fn")
        elif args.inputs:
            try:
                with open(args.inputs, "rb") as f:
                    inputs = json.loads(f.read().decode("utf-8"))
            except OSError as e:
                raise _BadInput("--inputs: cannot read %s: %s" % (args.inputs, e.strerror))
            except (ValueError, UnicodeDecodeError) as e:
                raise _BadInput("--inputs: %s is not JSON: %s" % (args.inputs, e))
            if not isinstance(inputs, list) or not inputs:
                raise _BadInput("--inputs: %s must hold a non-empty JSON list" % args.inputs)
        else:
            inputs = [None]
        kwargs = {}
        for key in ("async_fn", "check"):
            if getattr(args, key):
                kwargs[key] = _resolve(getattr(args, key), "--" + key.replace("_", "-"))
        if args.models:
            kwargs["models"] = [m for m in args.models.split(",")]
        if args.workers:
            try:
                kwargs["workers"] = [int(w) for w in args.workers.split(",")]
            except ValueError:
                raise _BadInput("--workers: expected comma-separated integers, got %r"
                                % args.workers) from None
        for key in ("repetitions", "min_time", "timeout", "seed", "tasks"):
            if getattr(args, key) is not None:
                kwargs[key] = getattr(args, key)
        out = args.out or _default_bench_out(args.function)
        report = concbench.bench(fn, inputs, out=out, progress=True, overwrite=args.overwrite,
                                 **kwargs)
    except (_BadInput, ValueError) as e:  # UsageError is a ValueError
        sys.stderr.write("concbench: %s\n" % str(e).replace("\n", " "))
        return 2
    return _finish(report, out)


def _default_bench_out(function):
    os.makedirs("results", exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in function)
    return "results/bench-%s-%s.json" % (safe, stamp)


def _finish(report, out):
    """The table, the verdict and the exit code of a finished run or bench."""
    sys.stdout.write(concbench.format_table(report))
    sys.stdout.write("verdict:\n" + concbench.verdict(report, "text"))
    print("report: " + out)
    bad = sum(1 for c in report["results"] if c["status"] != "ok")
    if bad:
        print("%d cell(s) did not verify or did not finish; see status in the report" % bad)
    return 1 if bad else 0


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "bench":
        return _bench_main(args)
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
        if args.min_effect is not None and not 0 <= args.min_effect <= 1000:
            sys.stderr.write("concbench: --min-effect: must be in [0, 1000]\n")
            return 2
        if not 0 < args.alpha <= 0.5:
            sys.stderr.write("concbench: --alpha: must be in (0, 0.5]\n")
            return 2
        try:
            text, code = concbench._compare(args.reports, args.normalize, args.fail_on_regression,
                                            args.alpha, args.format, args.min_effect,
                                            args.fail_on_broken)
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
    return _finish(report, out)


if __name__ == "__main__":
    sys.exit(main())
