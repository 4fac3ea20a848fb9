"""scripts/validate_gil.py's gates: the committed reference gates as it says it does, and a
reference made to disagree fails. (Its live runs take minutes; `--check` reruns only the gates.)"""

import copy
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "validate_gil.py")
COMMITTED = os.path.join(ROOT, "results", "gil_validation.json")


def _run(*args):
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True,
                          text=True)


def _committed():
    with open(COMMITTED) as f:
        return json.load(f)


def test_the_committed_reference_gates_as_recorded():
    report = _committed()
    assert report["runs"] >= 5
    r = _run("--check", COMMITTED)
    assert r.returncode == (0 if report["holds"] else 1), r.stdout + r.stderr
    assert "%d of %d gates hold" % (sum(g["holds"] for g in report["gates"]),
                                   len(report["gates"])) in r.stdout
    # Every installed version's row, with the policy that emulates it.
    assert {g["policy"] for g in report["gates"]} >= {"3.11-3.12"}


def test_a_reference_made_to_disagree_fails(tmp_path):
    report = _committed()
    assert any(g["holds"] for g in report["gates"] if g["what"] == "round trips/s, 1 CPU thread")
    wrong = copy.deepcopy(report)
    for c in wrong["cpython"]:
        e = c["summary"]["echo"]["1"]
        e["round_trips_per_s"]["median"] *= 3  # CPython three times faster than it was
        c["summary"]["race"]["plain"]["min"] = c["summary"]["race"]["plain"]["max"] = 123456789
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps(wrong))
    r = _run("--check", COMMITTED, "--reference", path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "MISSES" in r.stdout
    lines = [ln for ln in r.stdout.splitlines() if "round trips/s, 1 CPU thread" in ln]
    assert lines and all("MISSES" in ln for ln in lines), r.stdout


def test_bad_input_gets_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{\"kind\": \"something else\"}")
    for args in (["--check", bad], ["--check", tmp_path / "missing.json"], ["--runs", "3"]):
        r = _run(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (args, r.stderr)
