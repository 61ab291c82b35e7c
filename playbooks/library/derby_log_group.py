#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: derby_log_group
short_description: Manage a CloudWatch Logs group with a retention period and tags, honouring check mode
description:
  - Creates or deletes a log group and keeps its retention and tags as given.
  - Exists because C(amazon.aws.cloudwatchlogs_log_group) (amazon.aws 10) changes the retention even in check mode.
options:
  name:
    description: Log group name.
    type: str
    required: true
  state:
    description: Whether the log group should exist.
    type: str
    choices: [present, absent]
    default: present
  retention_days:
    description: Days to keep events (one of the values CloudWatch Logs accepts); 0 keeps them forever.
    type: int
    default: 30
  tags:
    description: Tags of the log group.
    type: dict
    default: {}
  purge_tags:
    description: Remove tags not listed in I(tags).
    type: bool
    default: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: derby-batch
"""

EXAMPLES = r"""
- name: Job logs kept for a month
  derby_log_group:
    name: /aws/batch/derby
    retention_days: 30
"""

RETURN = r"""
log_group:
  description: Name, ARN, retention and tags (empty when absent).
  returned: always
  type: dict
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible.module_utils.derby_aws import tag_changes
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry


def describe(client, name):
    paginator = client.get_paginator("describe_log_groups")
    for page in paginator.paginate(logGroupNamePrefix=name):
        for group in page["logGroups"]:
            if group["logGroupName"] == name:
                return group
    return None


def arn_without_star(group):
    arn = group["arn"]
    return arn[:-2] if arn.endswith(":*") else arn


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            retention_days=dict(type="int", default=30),
            tags=dict(type="dict", default={}),
            purge_tags=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    name = params["name"]
    client = module.client("logs", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    try:
        group = describe(client, name)
        if params["state"] == "absent":
            if group and not module.check_mode:
                client.delete_log_group(logGroupName=name, aws_retry=True)
            module.exit_json(changed=bool(group), log_group={}, diff={"before": {"name": name} if group else {},
                                                                     "after": {}})

        after = {"name": name, "retention_days": params["retention_days"], "tags": params["tags"]}
        if group is None:
            if not module.check_mode:
                client.create_log_group(logGroupName=name, tags=params["tags"], aws_retry=True)
                if params["retention_days"]:
                    client.put_retention_policy(logGroupName=name, retentionInDays=params["retention_days"],
                                                aws_retry=True)
                group = describe(client, name)
            module.exit_json(changed=True, log_group=dict(after, arn=group["arn"] if group else ""),
                             diff={"before": {}, "after": after})

        tags = client.list_tags_for_resource(resourceArn=arn_without_star(group), aws_retry=True).get("tags", {})
        before = {"name": name, "retention_days": group.get("retentionInDays", 0), "tags": tags}
        changed = False
        if before["retention_days"] != params["retention_days"]:
            changed = True
            if not module.check_mode:
                if params["retention_days"]:
                    client.put_retention_policy(logGroupName=name, retentionInDays=params["retention_days"],
                                                aws_retry=True)
                else:
                    client.delete_retention_policy(logGroupName=name, aws_retry=True)
        to_set, to_remove = tag_changes(tags, params["tags"], params["purge_tags"])
        if to_set or to_remove:
            changed = True
            if not module.check_mode:
                if to_remove:
                    client.untag_resource(resourceArn=arn_without_star(group), tagKeys=to_remove, aws_retry=True)
                if to_set:
                    client.tag_resource(resourceArn=arn_without_star(group), tags=to_set, aws_retry=True)
        module.exit_json(changed=changed, log_group=dict(after, arn=group["arn"]), diff={"before": before,
                                                                                         "after": after})
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="log group {0}".format(name))


if __name__ == "__main__":
    main()
