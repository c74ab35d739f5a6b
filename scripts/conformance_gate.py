#!/usr/bin/env python3
"""Runs the AWS-recorded conformance corpus, an external suite (../shared/conformance, or
$EXPRESSWAY_CONFORMANCE_DIR), against `expressway exec` and fails if any category passes
fewer cases than recorded in conformance/baseline.json.

The pure cases and those that call Lambda run; the runner serves each case's functions over
the Lambda Invoke API and `exec --lambda-endpoint` sends every Lambda call there.

    scripts/conformance_gate.py [--update]     (--update rewrites the baseline)
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFORMANCE = os.environ.get(
    "EXPRESSWAY_CONFORMANCE_DIR", os.path.join(ROOT, "..", "shared", "conformance")
)
RUNNER = os.path.join(CONFORMANCE, "run.py")
BASELINE = os.path.join(ROOT, "conformance", "baseline.json")
BINARY = os.path.join(ROOT, "target", "release", "expressway")
CMD = (
    BINARY
    + " exec --workflow-type {type} --definition {definition} --input {input}"
    + " --lambda-endpoint {lambda_endpoint}"
)


def main() -> int:
    if not os.path.exists(RUNNER):
        print(f"conformance runner not found at {RUNNER}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        report_path = os.path.join(tmp, "report.json")
        subprocess.run(
            [
                sys.executable, RUNNER, "--allow-needs", "lambda", "--lambda-server",
                "-j", "4", "--cmd", CMD, "--json-report", report_path,
            ],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        with open(report_path) as f:
            report = json.load(f)
    results = report["results"] if isinstance(report, dict) else report
    passed, total = {}, {}
    for r in results:
        cat = r["category"]
        total[cat] = total.get(cat, 0) + 1
        passed[cat] = passed.get(cat, 0) + (r["outcome"] == "pass")
    if "--update" in sys.argv:
        with open(BASELINE, "w") as f:
            json.dump({c: passed[c] for c in sorted(passed)}, f, indent=2)
            f.write("\n")
        print(f"baseline written to {BASELINE}")
    with open(BASELINE) as f:
        baseline = json.load(f)
    regressions = []
    for cat in sorted(total):
        want = baseline.get(cat, 0)
        mark = "" if passed[cat] >= want else f"   REGRESSION (baseline {want})"
        print(f"conformance {cat:<22} {passed[cat]:>4}/{total[cat]:<4}{mark}")
        if passed[cat] < want:
            regressions.append(cat)
    n_pass = sum(passed.values())
    n_fail = sum(total.values()) - n_pass
    print(f"conformance: {n_pass} of {n_pass + n_fail} cases (pure and Lambda) pass")
    if regressions:
        print(f"conformance regressed in: {', '.join(regressions)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
