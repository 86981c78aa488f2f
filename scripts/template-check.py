"""Validates infra/template.yaml with each of its options set, and the nested-stack example.

    python scripts/template-check.py [--sam PATH]

Run with the Python of scripts/lambda-tools.sh (it has PyYAML), offline: scripts/template-check.sh
does. For each variant below, a copy of the template gets the variant's values as its parameters'
defaults and must pass `sam validate --lint` (cfn-lint resolves references to parameters with
their defaults, so a value is checked where it is used). Neither tool evaluates the template's
Rules, nor AllowedPattern against values it is not given as a default, so this script evaluates
them as CloudFormation does before it creates anything: every accepted variant must satisfy them,
and every refused variant must fail the rule or pattern named beside it.

The nested-stack example must pass `sam validate --lint`, pass only parameters the chatfn
template has, and give it a table of the layout the chatfn template creates.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import yaml

TEMPLATE = "infra/template.yaml"
NESTED = "examples/nested-stack/template.yaml"

CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
DOMAIN = {"DomainName": "chat.example.com", "CertificateArn": CERTIFICATE}
VPC = {"AgentTurnSubnetIds": "subnet-0a1b2c3d,subnet-4e5f6789", "AgentTurnSecurityGroupIds": "sg-0a1b2c3d"}
BOUNDARY = {"PermissionsBoundaryArn": "arn:aws:iam::123456789012:policy/team-boundary"}
TABLE = {"ExistingTableName": "app-table"}
EVENTS = {"WebhookUrl": "https://hooks.example.com/chatfn", "WebhookSecretName": "chatfn/webhook-secret"}

# Deployable: each must pass the rules, the patterns and `sam validate --lint`.
ACCEPTED = {
    "defaults": {},
    "existing table": TABLE,
    "custom domain": DOMAIN,
    "custom domain with its DNS records": {**DOMAIN, "HostedZoneId": "Z0123456789ABCDEFGHIJ"},
    "permissions boundary": BOUNDARY,
    "agent-turn in a VPC": VPC,
    "no front door": {"FrontDoor": "false"},
    "turn events": EVENTS,
    "all of them": {**TABLE, **DOMAIN, **BOUNDARY, **VPC, **EVENTS, "HostedZoneId": "Z0123456789ABCDEFGHIJ"},
}

# Refused before anything is created: the rule or the parameter whose pattern refuses each.
REFUSED = {
    "custom domain without the front door": ({**DOMAIN, "FrontDoor": "false"}, "CustomDomainNeedsTheFrontDoor"),
    "custom domain without a certificate": ({"DomainName": "chat.example.com"}, "CustomDomainNeedsTheFrontDoor"),
    "certificate without a domain": ({"CertificateArn": CERTIFICATE}, "CertificateNeedsADomain"),
    "certificate outside us-east-1": (
        {**DOMAIN, "CertificateArn": CERTIFICATE.replace("us-east-1", "eu-west-1")},
        "CertificateArn",
    ),
    "hosted zone without a domain": ({"HostedZoneId": "Z0123456789ABCDEFGHIJ"}, "HostedZoneNeedsADomain"),
    "subnets without security groups": (
        {"AgentTurnSubnetIds": VPC["AgentTurnSubnetIds"]},
        "SubnetsNeedSecurityGroups",
    ),
    "security groups without subnets": (
        {"AgentTurnSecurityGroupIds": VPC["AgentTurnSecurityGroupIds"]},
        "SecurityGroupsNeedSubnets",
    ),
    "a table name with a space": ({"ExistingTableName": "app table"}, "ExistingTableName"),
    "a webhook without a secret": ({"WebhookUrl": EVENTS["WebhookUrl"]}, "WebhookNeedsASecret"),
    "a webhook secret without a URL": (
        {"WebhookSecretName": EVENTS["WebhookSecretName"]},
        "WebhookSecretNeedsAUrl",
    ),
    "a webhook that is not a URL": ({**EVENTS, "WebhookUrl": "hooks.example.com"}, "WebhookUrl"),
}


class TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags as their long forms (!Ref x -> {"Ref": "x"})."""


def _tag(loader, suffix, node):
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


TemplateLoader.add_multi_constructor("!", _tag)


def load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=TemplateLoader)


def evaluate(expression, values):
    """A rule's condition or assertion, with the rule functions the template uses."""
    if isinstance(expression, str):
        return expression
    if not isinstance(expression, dict) or len(expression) != 1:
        raise ValueError(f"not a rule function: {expression!r}")
    ((name, argument),) = expression.items()
    if name == "Ref":
        return values[argument]
    if name == "Fn::Equals":
        left, right = (evaluate(a, values) for a in argument)
        return left == right
    if name == "Fn::Not":
        return not evaluate(argument[0], values)
    if name == "Fn::And":
        return all(evaluate(a, values) for a in argument)
    if name == "Fn::Or":
        return any(evaluate(a, values) for a in argument)
    raise ValueError(f"{name} is not evaluated here: add it to scripts/template-check.py")


def refusals(template, overrides):
    """The parameters and rules that refuse `overrides`, as CloudFormation would."""
    parameters = template["Parameters"]
    unknown = set(overrides) - set(parameters)
    if unknown:
        raise ValueError(f"no such parameters: {sorted(unknown)}")
    values = {name: overrides.get(name, spec.get("Default", "")) for name, spec in parameters.items()}
    refused = []
    for name, spec in parameters.items():
        value = str(values[name])
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            refused.append(name)
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(v) for v in allowed]:
            refused.append(name)
    for name, rule in template.get("Rules", {}).items():
        condition = rule.get("RuleCondition")
        if condition is not None and not evaluate(condition, values):
            continue
        if not all(evaluate(a["Assert"], values) for a in rule["Assertions"]):
            refused.append(name)
    return refused


def with_defaults(text, overrides):
    """The template's text with each overridden parameter's Default line replaced."""
    for name, value in overrides.items():
        block = re.compile(rf"(^  {re.escape(name)}:\n(?:    .*\n)*?    Default: ).*$", re.M)
        text, count = block.subn(lambda m: m.group(1) + yaml.safe_dump(value).splitlines()[0], text)
        if count != 1:
            raise ValueError(f"no Default line for {name} in {TEMPLATE}")
    return text


def sam_validate(sam, path):
    env = dict(
        os.environ,
        # No AWS account is needed: the credentials only have to exist.
        AWS_ACCESS_KEY_ID="validate",
        AWS_SECRET_ACCESS_KEY="validate",
        AWS_SESSION_TOKEN="",
        SAM_CLI_TELEMETRY="0",
    )
    run = subprocess.run(
        [sam, "validate", "--lint", "--region", "us-east-1", "-t", path],
        env=env,
        capture_output=True,
        text=True,
    )
    return run.returncode == 0, (run.stdout + run.stderr).strip()


def check_nested(sam, template, failures):
    ok, output = sam_validate(sam, NESTED)
    print(f"{'ok' if ok else 'FAIL'}  {NESTED}: sam validate --lint")
    if not ok:
        failures.append(f"{NESTED}: {output}")
    parent = load(NESTED)
    children = [r for r in parent["Resources"].values() if r["Type"] == "AWS::Serverless::Application"]
    for child in children:
        location = os.path.normpath(os.path.join(os.path.dirname(NESTED), child["Properties"]["Location"]))
        if location != os.path.normpath(TEMPLATE):
            failures.append(f"{NESTED}: nests {location}, not {TEMPLATE}")
        passed = set(child["Properties"].get("Parameters", {}))
        unknown = passed - set(template["Parameters"])
        if unknown:
            failures.append(f"{NESTED}: passes parameters {TEMPLATE} does not have: {sorted(unknown)}")
    # The table it gives chatfn has the layout of the table chatfn creates.
    ours = template["Resources"]["ChatTable"]["Properties"]
    layout = ("AttributeDefinitions", "KeySchema", "TimeToLiveSpecification")
    for name, resource in parent["Resources"].items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            theirs = resource["Properties"]
            for key in layout:
                if theirs.get(key) != ours.get(key):
                    failures.append(f"{NESTED}: {name}.{key} differs from ChatTable's in {TEMPLATE}")
    print(f"{'ok' if not failures else 'FAIL'}  {NESTED}: parameters and table fit {TEMPLATE}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default="sam")
    args = parser.parse_args()

    template = load(TEMPLATE)
    with open(TEMPLATE, encoding="utf-8") as handle:
        text = handle.read()
    failures = []

    # Beside the template, so its relative CodeUri still resolves. One `sam validate` takes a few
    # seconds, mostly cfn-lint's start: they run side by side.
    with tempfile.TemporaryDirectory(dir=os.path.dirname(TEMPLATE), prefix=".variants-") as folder:
        jobs = {}
        for n, (name, overrides) in enumerate(ACCEPTED.items()):
            jobs[("accepted", name)] = (overrides, None)
        for n, (name, (overrides, expected)) in enumerate(REFUSED.items()):
            jobs[("refused", name)] = (overrides, expected)
        paths = {}
        for n, (key, (overrides, expected)) in enumerate(jobs.items()):
            # A pattern's refusal is cfn-lint's too, once the value is the default; a rule's is not.
            if expected is None or expected in template["Parameters"]:
                paths[key] = os.path.join(folder, f"variant-{n}.yaml")
                with open(paths[key], "w", encoding="utf-8") as handle:
                    handle.write(with_defaults(text, overrides))
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            validated = dict(zip(paths, pool.map(lambda path: sam_validate(args.sam, path), paths.values())))

        for key, (overrides, expected) in jobs.items():
            kind, name = key
            refused = refusals(template, overrides)
            ok, output = validated.get(key, (None, ""))
            if kind == "accepted":
                good = ok and not refused
                if refused:
                    failures.append(f"{name}: refused by {refused}")
                if not ok:
                    failures.append(f"{name}: sam validate --lint failed:\n{output}")
                print(f"{'ok' if good else 'FAIL'}  accepted: {name}")
            else:
                good = refused == [expected] and ok is not True
                if refused != [expected]:
                    failures.append(f"{name}: refused by {refused or 'nothing'}, expected [{expected}]")
                if ok is True:
                    failures.append(f"{name}: sam validate --lint accepted it")
                print(f"{'ok' if good else 'FAIL'}  refused: {name} (by {expected})")

    check_nested(args.sam, template, failures)

    if failures:
        print("\n".join(["", "template check failed:", *failures]), file=sys.stderr)
        sys.exit(1)
    print(f"{len(ACCEPTED)} variants accepted, {len(REFUSED)} refused, the nested stack fits")


if __name__ == "__main__":
    main()
