"""Turns pytest's JUnit XML into the conformance results format.

    junit_results.py JUNIT_XML SRC_DIR RESULTS SKIPPED [DESELECTED_ID REASON]...

RESULTS gets `PASS <id>` / `FAIL <id> <first line of the failure>` (what conformance_report
reads); SKIPPED gets `SKIP <id>  <reason>`, for tests pytest skipped and for the ids the suite
deselected (given as pairs on the command line). Skips are never counted as passes. <id> is the
pytest node id relative to SRC_DIR (tests/test_caldav.py::Class::test[param]), spaces replaced
by `_`. Prints the skipped list and a count line to stdout.
"""

import os
import sys
import xml.etree.ElementTree as ET


def node_id(src, classname, name):
    parts = classname.split(".") if classname else []
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if os.path.isfile(os.path.join(src, path)):
            return "::".join([path] + parts[i:] + [name])
    return "::".join(parts + [name])


def one_line(text):
    text = " ".join((text or "").split())
    return text[:300]


def main():
    junit, src, results_path, skipped_path = sys.argv[1:5]
    deselected = sys.argv[5:]
    root = ET.parse(junit).getroot()
    results, skipped, seen = [], [], set()
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for case in root.iter("testcase"):
        tid = node_id(src, case.get("classname", ""), case.get("name", "")).replace(" ", "_")
        if tid in seen:
            raise SystemExit(f"duplicate test id {tid} in {junit}")
        seen.add(tid)
        bad = [c for c in case if c.tag in ("failure", "error")]
        skip = [c for c in case if c.tag == "skipped"]
        if bad:
            first = bad[0]
            what = "error" if first.tag == "error" else "failed"
            detail = one_line(first.get("message") or first.text)
            results.append(f"FAIL {tid} [{what}] {detail}")
            counts["FAIL"] += 1
        elif skip:
            reason = one_line(skip[0].get("message") or skip[0].text)
            skipped.append(f"SKIP {tid}  {reason}")
            counts["SKIP"] += 1
        else:
            results.append(f"PASS {tid}")
            counts["PASS"] += 1
    for tid, reason in zip(deselected[::2], deselected[1::2]):
        skipped.append(f"SKIP {tid}  deselected by the suite: {reason}")
        counts["SKIP"] += 1
    with open(results_path, "w") as f:
        f.writelines(line + "\n" for line in results)
    with open(skipped_path, "w") as f:
        f.writelines(line + "\n" for line in skipped)
    for line in skipped:
        print(line)
    print(
        f"pytest outcome: {counts['PASS']} passed, {counts['FAIL']} failed or errored, "
        f"{counts['SKIP']} skipped (skips are not counted as passes)"
    )
    if not results:
        raise SystemExit("no test ran")


if __name__ == "__main__":
    main()
