"""What the scripts under scripts/ share: finding bench_runner, parsing flag lists, reading
reports, and a median. Imported by path (scripts/ is sys.path[0] when a script runs)."""
import json
import os
import subprocess
import sys
import tempfile

SCHEMA_VERSION = 1


class BadInput(Exception):
    """One line for stderr; the script exits 2."""


def die(tool, message):
    sys.stderr.write(f"{tool}: {message}\n")
    sys.exit(2)


def bench_runner(tool, build):
    path = os.path.join(build, "bench_runner")
    if not os.access(path, os.X_OK):
        die(tool, f"no bench_runner at {path} (build first)")
    return path


def int_list(text):
    """"1,2,4" -> [1, 2, 4]; None when any item is not an integer."""
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        return None


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    n = len(xs)
    if not n:
        return None
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def load_report(path):
    """A concbench report (schema 1), checked as far as the scripts read it; BadInput otherwise.
    bench_runner validate checks the whole schema."""
    try:
        with open(path, "rb") as f:
            report = json.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise BadInput(f"{path}: cannot read: {e.strerror}")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"{path}: not valid JSON ({str(e).splitlines()[0]}); truncated?")
    if not isinstance(report, dict) or "schema_version" not in report:
        raise BadInput(f"{path}: not a concbench report (no schema_version)")
    if report["schema_version"] != SCHEMA_VERSION:
        raise BadInput(f"{path}: schema version {report['schema_version']!r} "
                       f"(this script reads {SCHEMA_VERSION})")
    if not isinstance(report.get("results"), list) or not isinstance(report.get("context"), dict):
        raise BadInput(f"{path}: not a concbench report (no results or context)")
    for i, c in enumerate(report["results"]):
        for key, kind in (("workload", str), ("model", str), ("workers", int), ("status", str),
                          ("params", dict), ("repetitions", list)):
            if not isinstance(c, dict) or not isinstance(c.get(key), kind):
                raise BadInput(f"{path}: results[{i}].{key}: missing or of the wrong type")
    return report


def bench_report(tool, runner, args, timeout=1800):
    """Runs `bench_runner run ARGS` into a temporary report and returns the report; bad usage
    (exit 2) ends the script with bench_runner's line. A run whose cells failed still returns
    its report: the caller reads their status."""
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        proc = subprocess.run([runner, "run", "--overwrite", "--out", path] + list(args),
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode == 2:
            die(tool, "bench_runner refused: " + proc.stderr.strip())
        with open(path) as f:
            return json.load(f)
    finally:
        os.unlink(path)


def write_json_atomic(path, obj):
    """Writes obj as indented JSON through a temporary file and rename: old file or new."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
