#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: derby_dynamodb_table
short_description: Manage an on-demand DynamoDB table with a stream and point-in-time recovery
description:
  - Creates, updates or deletes a DynamoDB table billed per request, with a string hash key and an optional string
    range key, an optional stream, point-in-time recovery, deletion protection and tags.
  - Exists because C(community.aws.dynamodb_table) has no stream support. Every setting is compared with what
    DynamoDB reports, so an unchanged table reports C(ok).
  - The key schema cannot change after creation; the module fails rather than silently ignoring such a change.
  - Global secondary indexes named in I(indexes) are created when missing (on a new or an existing table); an index
    whose key or projection differs fails the module. Indexes not named are left alone.
options:
  name:
    description: Table name.
    type: str
    required: true
  state:
    description: Whether the table should exist.
    type: str
    choices: [present, absent]
    default: present
  hash_key:
    description: Name of the string partition key.
    type: str
    default: pk
  range_key:
    description: Name of the string sort key; omit for a table without one.
    type: str
  stream_view_type:
    description: Stream view type; omit to have no stream.
    type: str
    choices: [NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES, KEYS_ONLY]
  indexes:
    description: Global secondary indexes, each with a string hash key.
    type: list
    elements: dict
    default: []
    suboptions:
      name: {description: Index name., type: str, required: true}
      hash_key: {description: Name of the index's string partition key., type: str, required: true}
      projection: {description: What the index holds., type: str, choices: [KEYS_ONLY, ALL], default: KEYS_ONLY}
  point_in_time_recovery:
    description: Enable continuous backups with point-in-time recovery.
    type: bool
    default: true
  deletion_protection:
    description: Refuse DeleteTable while true. C(state=absent) turns it off first when I(force_delete) is true.
    type: bool
    default: false
  force_delete:
    description: With C(state=absent), turn deletion protection off before deleting.
    type: bool
    default: false
  tags:
    description: Tags of the table.
    type: dict
    default: {}
  purge_tags:
    description: Remove tags not listed in I(tags).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the table to become ACTIVE or to disappear.
    type: int
    default: 600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: derby-batch
"""

EXAMPLES = r"""
- name: Items table with a stream for the router
  derby_dynamodb_table:
    name: derby-items
    hash_key: pk
    range_key: sk
    stream_view_type: NEW_AND_OLD_IMAGES
    indexes:
      - {name: open, hash_key: open, projection: KEYS_ONLY}
    point_in_time_recovery: true
    tags:
      derby-batch:stack: derby
"""

RETURN = r"""
table:
  description: The table as the module leaves it (empty when absent).
  returned: always
  type: dict
  contains:
    name: {description: Table name., type: str}
    arn: {description: Table ARN., type: str}
    stream_arn: {description: ARN of the latest stream, or empty when no stream., type: str}
    stream_view_type: {description: Stream view type, or empty., type: str}
    billing_mode: {description: PAY_PER_REQUEST., type: str}
    point_in_time_recovery: {description: Whether PITR is enabled., type: bool}
    deletion_protection: {description: Whether deletion protection is on., type: bool}
    indexes: {description: "Global secondary indexes: name, hash key, projection.", type: list}
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible.module_utils.derby_aws import tag_changes, wait_for
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry


def describe(client, name):
    try:
        return client.describe_table(TableName=name, aws_retry=True)["Table"]
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise


def pitr_enabled(client, name):
    backups = client.describe_continuous_backups(TableName=name, aws_retry=True)["ContinuousBackupsDescription"]
    pitr = backups.get("PointInTimeRecoveryDescription", {})
    return pitr.get("PointInTimeRecoveryStatus") == "ENABLED"


def current_tags(client, arn):
    tags = client.list_tags_of_resource(ResourceArn=arn, aws_retry=True).get("Tags", [])
    return {t["Key"]: t["Value"] for t in tags}


def summary(table, pitr):
    if not table:
        return {}
    stream = table.get("StreamSpecification") or {}
    return {
        "name": table["TableName"],
        "arn": table["TableArn"],
        "stream_arn": table.get("LatestStreamArn", "") if stream.get("StreamEnabled") else "",
        "stream_view_type": stream.get("StreamViewType", "") if stream.get("StreamEnabled") else "",
        "billing_mode": (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED"),
        "point_in_time_recovery": bool(pitr),
        "deletion_protection": bool(table.get("DeletionProtectionEnabled", False)),
        "indexes": sorted((index_summary(i) for i in table.get("GlobalSecondaryIndexes") or []), key=str),
    }


def index_summary(index):
    (key,) = [k["AttributeName"] for k in index["KeySchema"] if k["KeyType"] == "HASH"]
    return {"name": index["IndexName"], "hash_key": key, "projection": index["Projection"]["ProjectionType"]}


def index_request(index):
    return {
        "IndexName": index["name"],
        "KeySchema": [{"AttributeName": index["hash_key"], "KeyType": "HASH"}],
        "Projection": {"ProjectionType": index["projection"]},
    }


def attribute_definitions(params):
    names = [k["AttributeName"] for k in key_schema(params)] + [i["hash_key"] for i in params["indexes"]]
    return [{"AttributeName": n, "AttributeType": "S"} for n in dict.fromkeys(names)]


def wait_active(module, client, name):
    def probe():
        table = describe(client, name)
        return table if table and table["TableStatus"] == "ACTIVE" else None

    return wait_for(module, "table {0} to be ACTIVE".format(name), probe, module.params["wait_timeout"])


def key_schema(params):
    keys = [{"AttributeName": params["hash_key"], "KeyType": "HASH"}]
    if params["range_key"]:
        keys.append({"AttributeName": params["range_key"], "KeyType": "RANGE"})
    return keys


def create(module, client):
    params = module.params
    keys = key_schema(params)
    request = {
        "TableName": params["name"],
        "AttributeDefinitions": attribute_definitions(params),
        "KeySchema": keys,
        "BillingMode": "PAY_PER_REQUEST",
        "DeletionProtectionEnabled": params["deletion_protection"],
    }
    if params["stream_view_type"]:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": params["stream_view_type"]}
    if params["indexes"]:
        request["GlobalSecondaryIndexes"] = [index_request(i) for i in params["indexes"]]
    if params["tags"]:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in params["tags"].items()]
    client.create_table(aws_retry=True, **request)
    table = wait_active(module, client, params["name"])
    if params["point_in_time_recovery"]:
        set_pitr(client, params["name"], True)
    return table


def set_pitr(client, name, enabled):
    client.update_continuous_backups(
        TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled}, aws_retry=True
    )


def update(module, client, table):
    """Bring an existing table to the desired settings; return the list of what changed."""
    params = module.params
    name = params["name"]
    changes = []
    current_keys = sorted((k["KeyType"], k["AttributeName"]) for k in table["KeySchema"])
    if current_keys != sorted((k["KeyType"], k["AttributeName"]) for k in key_schema(params)):
        module.fail_json(msg="table {0} has key schema {1}; a key schema cannot change".format(name, current_keys))

    existing = {i["IndexName"]: index_summary(i) for i in table.get("GlobalSecondaryIndexes") or []}
    for index in params["indexes"]:
        if index["name"] not in existing:
            changes.append("index " + index["name"])
            if not module.check_mode:
                client.update_table(
                    TableName=name,
                    AttributeDefinitions=attribute_definitions(params),
                    GlobalSecondaryIndexUpdates=[{"Create": index_request(index)}],
                    aws_retry=True,
                )
                table = wait_active(module, client, name)
        elif existing[index["name"]] != dict(index):
            module.fail_json(
                msg="table {0} has index {1}; an index cannot change".format(name, existing[index["name"]])
            )

    billing = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    if billing != "PAY_PER_REQUEST":
        changes.append("billing_mode")
        if not module.check_mode:
            client.update_table(TableName=name, BillingMode="PAY_PER_REQUEST", aws_retry=True)
            table = wait_active(module, client, name)

    stream = table.get("StreamSpecification") or {}
    current_view = stream.get("StreamViewType") if stream.get("StreamEnabled") else None
    if current_view != params["stream_view_type"]:
        changes.append("stream")
        if not module.check_mode:
            if current_view:  # a view type cannot be changed in place: disable, then enable
                client.update_table(TableName=name, StreamSpecification={"StreamEnabled": False}, aws_retry=True)
                table = wait_active(module, client, name)
            if params["stream_view_type"]:
                client.update_table(
                    TableName=name,
                    StreamSpecification={"StreamEnabled": True, "StreamViewType": params["stream_view_type"]},
                    aws_retry=True,
                )
                table = wait_active(module, client, name)

    if bool(table.get("DeletionProtectionEnabled", False)) != params["deletion_protection"]:
        changes.append("deletion_protection")
        if not module.check_mode:
            client.update_table(
                TableName=name, DeletionProtectionEnabled=params["deletion_protection"], aws_retry=True
            )
            table = wait_active(module, client, name)

    if pitr_enabled(client, name) != params["point_in_time_recovery"]:
        changes.append("point_in_time_recovery")
        if not module.check_mode:
            set_pitr(client, name, params["point_in_time_recovery"])

    to_set, to_remove = tag_changes(current_tags(client, table["TableArn"]), params["tags"], params["purge_tags"])
    if to_set or to_remove:
        changes.append("tags")
        if not module.check_mode:
            if to_remove:
                client.untag_resource(ResourceArn=table["TableArn"], TagKeys=to_remove, aws_retry=True)
            if to_set:
                client.tag_resource(
                    ResourceArn=table["TableArn"],
                    Tags=[{"Key": k, "Value": v} for k, v in to_set.items()],
                    aws_retry=True,
                )
    return changes


def desired_summary(params, table):
    """What the summary will look like after the change (for the diff)."""
    return {
        "name": params["name"],
        "stream_view_type": params["stream_view_type"] or "",
        "billing_mode": "PAY_PER_REQUEST",
        "point_in_time_recovery": params["point_in_time_recovery"],
        "deletion_protection": params["deletion_protection"],
        "indexes": sorted((dict(i) for i in params["indexes"]), key=str),
        "tags": params["tags"],
    }


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            hash_key=dict(type="str", default="pk", no_log=False),
            range_key=dict(type="str", no_log=False),
            stream_view_type=dict(type="str", choices=["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY"]),
            indexes=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    hash_key=dict(type="str", required=True, no_log=False),
                    projection=dict(type="str", choices=["KEYS_ONLY", "ALL"], default="KEYS_ONLY"),
                ),
            ),
            point_in_time_recovery=dict(type="bool", default=True),
            deletion_protection=dict(type="bool", default=False),
            force_delete=dict(type="bool", default=False),
            tags=dict(type="dict", default={}),
            purge_tags=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=600),
        ),
        supports_check_mode=True,
    )
    client = module.client("dynamodb", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    name = module.params["name"]
    try:
        table = describe(client, name)
        before = summary(table, pitr_enabled(client, name) if table else False)
        if table:
            before["tags"] = current_tags(client, table["TableArn"])

        if module.params["state"] == "absent":
            if not table:
                module.exit_json(changed=False, table={})
            if not module.check_mode:
                if table.get("DeletionProtectionEnabled") and module.params["force_delete"]:
                    client.update_table(TableName=name, DeletionProtectionEnabled=False, aws_retry=True)
                    wait_active(module, client, name)
                client.delete_table(TableName=name, aws_retry=True)
                wait_for(
                    module,
                    "table {0} to be deleted".format(name),
                    lambda: describe(client, name) is None,
                    module.params["wait_timeout"],
                )
            module.exit_json(changed=True, table={}, diff={"before": before, "after": {}})

        if not table:
            if module.check_mode:
                module.exit_json(changed=True, table={}, diff={"before": {}, "after": desired_summary(module.params, None)})
            table = create(module, client)
            changes = ["created"]
        else:
            changes = update(module, client, table)
            if changes and not module.check_mode:
                table = wait_active(module, client, name)
        after = summary(table, pitr_enabled(client, name)) if not module.check_mode else dict(before)
        if module.check_mode:
            after.update(desired_summary(module.params, table))
        else:
            after["tags"] = current_tags(client, table["TableArn"])
        result = summary(table, after.get("point_in_time_recovery"))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="DynamoDB table {0}".format(name))
    module.exit_json(changed=bool(changes), changes=changes, table=result, diff={"before": before, "after": after})


if __name__ == "__main__":
    main()
