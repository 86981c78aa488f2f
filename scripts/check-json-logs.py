"""Checks a file of the functions' output in JSON log mode (CHATFN_LOG_FORMAT=json), line by
line: every line is one JSON object; a log line has `time` (RFC 3339), `level`, `message` and
`target`, and a line written inside a turn (one with the turn's `turn` field, or the turn's own
`turn finished`) carries the turn's `chat_id`; a metric line (CloudWatch Embedded Metric Format,
`_aws` at its root) follows the EMF specification, and with CHATFN_STORE=dynamodb carries the
turn's `StoreWriteUnits`. Exits non-zero with the offending lines.

    python3 scripts/check-json-logs.py FILE
"""

import json
import os
import re
import sys

LEVELS = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
UNITS = {"Milliseconds", "Count"}


def emf_problem(line):
    """What breaks the EMF specification in a metric line, or None."""
    aws = line["_aws"]
    if not isinstance(aws, dict) or not isinstance(aws.get("Timestamp"), int):
        return "_aws.Timestamp is not an integer of milliseconds"
    directives = aws.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return "no CloudWatchMetrics directive"
    for directive in directives:
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not 0 < len(namespace) <= 1024:
            return "a directive without a Namespace"
        for dimension_set in directive.get("Dimensions", []):
            for name in dimension_set:
                if not isinstance(line.get(name), str):
                    return f"dimension {name} is not a string at the root"
        for metric in directive.get("Metrics", []):
            name = metric.get("Name")
            value = line.get(name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return f"metric {name} is not a number at the root"
            if "Unit" in metric and metric["Unit"] not in UNITS:
                return f"metric {name} has unit {metric['Unit']}"
    return None


def main():
    path = sys.argv[1]
    dynamodb = os.environ.get("CHATFN_STORE") == "dynamodb"
    problems = []
    logs = turn_lines = turns_finished = metric_lines = with_units = 0
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, text in enumerate(lines, 1):
            text = text.rstrip("\n")
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except ValueError:
                problems.append((number, "not JSON", text))
                continue
            if not isinstance(line, dict):
                problems.append((number, "not a JSON object", text))
                continue
            if "_aws" in line:
                metric_lines += 1
                problem = emf_problem(line)
                if problem:
                    problems.append((number, problem, text))
                if "StoreWriteUnits" in line:
                    with_units += 1
                elif dynamodb:
                    problems.append((number, "a turn on DynamoDB without StoreWriteUnits", text))
                continue
            logs += 1
            missing = [field for field in ("time", "level", "message", "target") if field not in line]
            if missing:
                problems.append((number, f"without {', '.join(missing)}", text))
                continue
            if not isinstance(line["time"], str) or not RFC3339.match(line["time"]):
                problems.append((number, "time is not RFC 3339", text))
            if line["level"] not in LEVELS:
                problems.append((number, "an unknown level", text))
            finished = line["message"] == "turn finished"
            turns_finished += finished
            if "turn" in line or finished:
                turn_lines += 1
                if not line.get("chat_id"):
                    problems.append((number, "a turn's line without chat_id", text))
    print(
        f"{logs} log lines ({turn_lines} of turns, {turns_finished} turns finished), "
        f"{metric_lines} metric lines ({with_units} with StoreWriteUnits)"
    )
    if not turns_finished or not metric_lines:
        problems.append((0, "no turn finished, or no metric line: were the tests run?", ""))
    for number, problem, text in problems[:20]:
        print(f"line {number}: {problem}: {text[:300]}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem lines in {path}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
