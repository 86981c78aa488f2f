"""Creates chatfn's DynamoDB table from its definition in infra/template.yaml, so local runs
and tests use exactly the table that `sam deploy` makes (keys, billing, TTL).

    python scripts/create-table.py TABLE_NAME [--template infra/template.yaml]

Uses boto3 (it comes with the SAM CLI: run it with the Python of scripts/lambda-tools.sh) and
the usual AWS environment: AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local, AWS_REGION and
credentials (any values do for DynamoDB Local). An existing table is left as it is.
"""

import argparse
import sys

import boto3
import yaml


class TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, ...) as plain values."""


def _any_tag(loader, _suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


TemplateLoader.add_multi_constructor("!", _any_tag)


def table_definition(template_path):
    with open(template_path, encoding="utf-8") as handle:
        template = yaml.load(handle, Loader=TemplateLoader)
    tables = [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource.get("Type") == "AWS::DynamoDB::Table"
    ]
    if len(tables) != 1:
        sys.exit(f"{template_path}: expected one AWS::DynamoDB::Table, found {len(tables)}")
    return tables[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table")
    parser.add_argument("--template", default="infra/template.yaml")
    args = parser.parse_args()

    table = table_definition(args.template)
    client = boto3.client("dynamodb")
    request = {
        "TableName": args.table,
        "AttributeDefinitions": table["AttributeDefinitions"],
        "KeySchema": table["KeySchema"],
        "BillingMode": table.get("BillingMode", "PAY_PER_REQUEST"),
    }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in table:
            request[key] = table[key]
    try:
        client.create_table(**request)
    except client.exceptions.ResourceInUseException:
        print(f"table {args.table} exists already")
        return
    client.get_waiter("table_exists").wait(TableName=args.table)
    ttl = table.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        client.update_time_to_live(
            TableName=args.table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    print(f"created table {args.table}")


if __name__ == "__main__":
    main()
