#!/usr/bin/env bash
# The SAM template with each of its options set (an existing table, a custom domain, a
# permissions boundary, agent-turn in a VPC, ...), the settings it must refuse, and the nested-stack
# example: `sam validate --lint` of each, offline, and the template's rules evaluated as
# CloudFormation does (scripts/template-check.py says how).
#
#   bash scripts/template-check.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="$(bash "$root/scripts/lambda-tools.sh" | tail -n1)"
"$tools/python" scripts/template-check.py --sam "$tools/sam"
