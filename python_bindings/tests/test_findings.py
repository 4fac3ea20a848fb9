"""scripts/findings.py: README's Findings are exactly what results/ gives, and only from committed
revisions."""

import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FINDINGS = os.path.join(ROOT, "scripts", "findings.py")
README = os.path.join(ROOT, "README.md")


def _run(*args):
    return subprocess.run([sys.executable, FINDINGS, *map(str, args)], capture_output=True,
                          text=True)


def test_the_readme_says_what_results_give():
    r = _run("--check", README)
    assert r.returncode == 0, r.stderr


def test_the_block_names_every_revision_and_no_dirty_one():
    r = _run()
    assert r.returncode == 0, r.stderr
    assert "Revisions of the files cited:" in r.stdout
    assert "-dirty" not in r.stdout


def test_a_file_from_an_uncommitted_tree_is_refused(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    path = results / "reference" / "full.json"
    report = json.loads(path.read_text())
    report["context"]["git_revision"] = "0123456789ab-dirty"
    path.write_text(json.dumps(report))
    r = _run("--results", results)
    assert r.returncode == 2
    assert "uncommitted tree" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # Printing it anyway is possible, publishing it is not.
    assert _run("--results", results, "--allow-dirty").returncode == 0
    assert _run("--results", results, "--allow-dirty", "--check", README).returncode == 2


def test_a_readme_that_drifted_fails_the_check(tmp_path):
    readme = tmp_path / "README.md"
    text = open(README).read()
    readme.write_text(text.replace("<!-- findings:end -->", "A figure typed by hand: 9.99x.\n"
                                   "<!-- findings:end -->"))
    r = _run("--check", readme)
    assert r.returncode == 1 and "differ" in r.stderr
    assert _run("--write", readme).returncode == 0
    assert _run("--check", readme).returncode == 0


def test_a_missing_file_is_one_line_and_exit_2(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    os.unlink(results / "micro" / "dispatch.json")
    r = _run("--results", results)
    assert r.returncode == 2 and "dispatch.json" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_stored_verdicts_are_what_verdict_says_of_their_reports():
    # results/own/*.verdict.json are what README's "Your own workload" prints; they must be what
    # the verdict says of their reports today (regenerate_results.sh own redoes both).
    import concbench
    own = os.path.join(ROOT, "results", "own")
    names = sorted(f[:-len(".verdict.json")] for f in os.listdir(own)
                   if f.endswith(".verdict.json"))
    assert names, "no verdicts under results/own"
    for name in names:
        with open(os.path.join(own, name + ".json")) as f:
            report = json.load(f)
        with open(os.path.join(own, name + ".verdict.json")) as f:
            stored = json.load(f)
        now = concbench.verdict(report, format="json")
        assert [w["line"] for w in now["workloads"]] == [w["line"] for w in stored["workloads"]], name
