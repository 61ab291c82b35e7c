#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: derby_lambda_event_source
short_description: Manage a Lambda event source mapping on a DynamoDB or Kinesis stream with its failure options
description:
  - Creates, updates or deletes the mapping between a stream and a function, with the options
    C(amazon.aws.lambda_event) lacks (bisect on error, maximum retry attempts, maximum record age, partial batch
    responses, an on-failure destination, filter criteria).
  - Every option is compared with what Lambda reports (filter patterns as parsed JSON), so an unchanged mapping
    reports C(ok) and a changed option is updated rather than ignored. C(StartingPosition) cannot change, so the
    mapping is recreated when it differs.
options:
  function_name:
    description: Function name or ARN.
    type: str
    required: true
  event_source_arn:
    description: Stream ARN. Required with C(state=present); with C(state=absent) and no ARN, every mapping of the
      function is deleted.
    type: str
  state:
    description: Whether the mapping should exist.
    type: str
    choices: [present, absent]
    default: present
  enabled:
    description: Whether the mapping polls.
    type: bool
    default: true
  batch_size:
    description: Records per invocation (1 to 10000).
    type: int
    default: 100
  maximum_batching_window_seconds:
    description: Seconds to gather records before invoking.
    type: int
    default: 0
  starting_position:
    description: Where a new mapping starts reading.
    type: str
    choices: [TRIM_HORIZON, LATEST]
    default: LATEST
  bisect_on_error:
    description: Split a failing batch in two and retry each half.
    type: bool
    default: true
  maximum_retry_attempts:
    description: Retries of a failing batch (-1 for unlimited, the AWS default).
    type: int
    default: 5
  maximum_record_age_seconds:
    description: Discard records older than this (-1 for no limit).
    type: int
    default: 3600
  parallelization_factor:
    description: Concurrent batches per shard.
    type: int
    default: 1
  report_batch_item_failures:
    description: Let the function report failed records (C(FunctionResponseTypes=[ReportBatchItemFailures])).
    type: bool
    default: true
  on_failure_destination:
    description: ARN of an SQS queue or SNS topic that receives the metadata of discarded batches.
    type: str
  filter_patterns:
    description: Event filter patterns (dicts); a record reaches the function when it matches one.
    type: list
    elements: dict
    default: []
  wait_timeout:
    description: Seconds to wait for the mapping to settle.
    type: int
    default: 300
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: derby-batch
"""

EXAMPLES = r"""
- name: Only chunk items reach the router
  derby_lambda_event_source:
    function_name: derby-router
    event_source_arn: "{{ table.table.stream_arn }}"
    batch_size: 100
    on_failure_destination: "{{ dlq.queue_arn }}"
    filter_patterns:
      - {dynamodb: {Keys: {sk: {S: [{prefix: "chunk#"}]}}}}
"""

RETURN = r"""
mapping:
  description: The mapping as Lambda reports it (empty when absent).
  returned: always
  type: dict
"""

import json

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible.module_utils.derby_aws import wait_for
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

SETTLING = ("Creating", "Enabling", "Disabling", "Updating", "Deleting")


def find_all(client, function_name, source_arn=None):
    paginator = client.get_paginator("list_event_source_mappings")
    query = {"FunctionName": function_name}
    if source_arn:
        query["EventSourceArn"] = source_arn
    found = []
    try:
        for page in paginator.paginate(**query):
            found.extend(m for m in page["EventSourceMappings"] if m.get("State") != "Deleting")
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":  # no such function: no mapping
            raise
    return found


def find(client, function_name, source_arn):
    found = find_all(client, function_name, source_arn)
    return found[0] if found else None


def desired_settings(params):
    """Updatable settings in the shape Lambda reports them."""
    settings = {
        "BatchSize": params["batch_size"],
        "MaximumBatchingWindowInSeconds": params["maximum_batching_window_seconds"],
        "BisectBatchOnFunctionError": params["bisect_on_error"],
        "MaximumRetryAttempts": params["maximum_retry_attempts"],
        "MaximumRecordAgeInSeconds": params["maximum_record_age_seconds"],
        "ParallelizationFactor": params["parallelization_factor"],
        "FunctionResponseTypes": ["ReportBatchItemFailures"] if params["report_batch_item_failures"] else [],
        "DestinationConfig": {"OnFailure": {"Destination": params["on_failure_destination"]}}
        if params["on_failure_destination"]
        else {"OnFailure": {}},
        "FilterCriteria": {"Filters": [{"Pattern": json.dumps(p, sort_keys=True)} for p in params["filter_patterns"]]},
    }
    return settings


def comparable(settings):
    """Normalize a settings dict: parse filter patterns, treat missing lists/dicts as empty."""
    result = dict(settings)
    filters = (settings.get("FilterCriteria") or {}).get("Filters") or []
    result["FilterCriteria"] = sorted(json.dumps(json.loads(f["Pattern"]), sort_keys=True) for f in filters)
    result["FunctionResponseTypes"] = sorted(settings.get("FunctionResponseTypes") or [])
    destination = ((settings.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    result["DestinationConfig"] = destination or ""
    return result


def current_settings(mapping, keys):
    return {k: mapping.get(k) for k in keys}


def enabled_state(mapping):
    return mapping.get("State") in ("Enabled", "Enabling", "Creating")


def wait_settled(module, client, uuid):
    def probe():
        mapping = client.get_event_source_mapping(UUID=uuid, aws_retry=True)
        return mapping if mapping.get("State") not in SETTLING else None

    return wait_for(module, "event source mapping {0}".format(uuid), probe, module.params["wait_timeout"], delay=3)


def clean(mapping):
    return {k: v for k, v in (mapping or {}).items() if k != "ResponseMetadata"}


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            function_name=dict(type="str", required=True),
            event_source_arn=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            enabled=dict(type="bool", default=True),
            batch_size=dict(type="int", default=100),
            maximum_batching_window_seconds=dict(type="int", default=0),
            starting_position=dict(type="str", choices=["TRIM_HORIZON", "LATEST"], default="LATEST"),
            bisect_on_error=dict(type="bool", default=True),
            maximum_retry_attempts=dict(type="int", default=5),
            maximum_record_age_seconds=dict(type="int", default=3600),
            parallelization_factor=dict(type="int", default=1),
            report_batch_item_failures=dict(type="bool", default=True),
            on_failure_destination=dict(type="str"),
            filter_patterns=dict(type="list", elements="dict", default=[]),
            wait_timeout=dict(type="int", default=300),
        ),
        required_if=[["state", "present", ["event_source_arn"]]],
        supports_check_mode=True,
    )
    params = module.params
    client = module.client("lambda", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    try:
        if params["state"] == "absent":
            mappings = find_all(client, params["function_name"], params["event_source_arn"])
            if not module.check_mode:
                for mapping in mappings:
                    client.delete_event_source_mapping(UUID=mapping["UUID"], aws_retry=True)
            module.exit_json(changed=bool(mappings), mapping={},
                             diff={"before": {"mappings": [m["UUID"] for m in mappings]}, "after": {"mappings": []}})
        mapping = find(client, params["function_name"], params["event_source_arn"])

        desired = desired_settings(params)
        if mapping and mapping.get("StartingPosition") not in (None, params["starting_position"]):
            if not module.check_mode:  # cannot be updated: recreate
                client.delete_event_source_mapping(UUID=mapping["UUID"], aws_retry=True)
                wait_for(module, "old mapping to go",
                         lambda: find(client, params["function_name"], params["event_source_arn"]) is None,
                         params["wait_timeout"], delay=3)
            before, mapping = clean(mapping), None
        else:
            before = clean(mapping)

        if mapping is None:
            request = dict(desired, FunctionName=params["function_name"], EventSourceArn=params["event_source_arn"],
                           StartingPosition=params["starting_position"], Enabled=params["enabled"])
            if not params["filter_patterns"]:
                request.pop("FilterCriteria")
            if not params["on_failure_destination"]:
                request.pop("DestinationConfig")
            if module.check_mode:
                module.exit_json(changed=True, mapping={}, diff={"before": before, "after": request})
            created = client.create_event_source_mapping(aws_retry=True, **request)
            mapping = wait_settled(module, client, created["UUID"])
            module.exit_json(changed=True, mapping=clean(mapping), diff={"before": before, "after": clean(mapping)})

        current = current_settings(mapping, desired)
        want, have = comparable(desired), comparable(current)
        update = {k: desired[k] for k in desired if want[k] != have[k]}
        if enabled_state(mapping) != params["enabled"]:
            update["Enabled"] = params["enabled"]
        if update and not module.check_mode:
            client.update_event_source_mapping(UUID=mapping["UUID"], aws_retry=True, **update)
            mapping = wait_settled(module, client, mapping["UUID"])
        after = dict(have, **{k: want[k] for k in update if k in want})
        if "Enabled" in update:
            after["Enabled"] = params["enabled"]
        module.exit_json(changed=bool(update), mapping=clean(mapping), requested_update=sorted(update),
                         diff={"before": have, "after": after})
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="event source mapping for {0}".format(params["function_name"]))


if __name__ == "__main__":
    main()
