#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: derby_batch_compute_environment
short_description: Manage a managed AWS Batch compute environment, replacing it when a setting cannot change in place
description:
  - Manages a MANAGED compute environment of type EC2, SPOT, FARGATE or FARGATE_SPOT, with the settings
    C(community.aws.batch_compute_environment) lacks (allocation strategy, C(ec2Configuration), Fargate).
  - The settings that define the fleet (type, allocation strategy, instance types, subnets, security groups, instance
    role, key pair, image type, launch template and its version) are hashed into the name, C(<name>-<hash>). Changing one of them creates a new
    compute environment next to the old one; point the job queue at the new one (its ARN is returned), then remove
    the old ones with C(state=absent) and I(name_prefix)/I(keep). Nothing is silently ignored, and running jobs keep
    their instances while the queue moves on.
  - Sizing (min and max vCPUs) and the ENABLED/DISABLED state are updated in place.
  - With C(state=absent), each matching compute environment is disabled, waited for and deleted (AWS refuses to
    delete an enabled one or one still attached to a queue). In check mode it only reports what it would delete,
    since the queue that a real run would first move off it has not moved.
  - With I(jobs_on_queues), a compute environment that still has STARTING or RUNNING jobs of those queues is not
    deleted. The task warns, returns its name in C(kept) and leaves it for a later run (which deletes it once its
    jobs are done). Deleting it would kill those jobs, and a Fargate compute environment deleted under running jobs
    goes INVALID.
  - An existing compute environment that Batch reports INVALID fails the task with Batch's C(statusReason).
  - Without I(service_role), Batch's service-linked role C(AWSServiceRoleForBatch) is used (created when missing).
options:
  name:
    description:
      - Base name. The compute environment is called C(<name>-<hash of the fleet settings>).
      - With C(state=absent) and no I(name_prefix), the exact name of the compute environment to delete.
    type: str
  state:
    description: Whether the compute environment should exist.
    type: str
    choices: [present, absent]
    default: present
  name_prefix:
    description: With C(state=absent), delete every compute environment whose name starts with this prefix, carries
      the tags in I(match_tags) and is not listed in I(keep).
    type: str
  keep:
    description: Names not to delete with I(name_prefix).
    type: list
    elements: str
    default: []
  match_tags:
    description: With I(name_prefix), only delete compute environments that carry all these tags.
    type: dict
    default: {}
  jobs_on_queues:
    description: With C(state=absent), job queues whose STARTING or RUNNING jobs keep a compute environment from
      being deleted when they run on it (the queues that used it).
    type: list
    elements: str
    default: []
  type:
    description: Compute resource type.
    type: str
    choices: [EC2, SPOT, FARGATE, FARGATE_SPOT]
    default: EC2
  enabled:
    description: Whether the compute environment accepts jobs.
    type: bool
    default: true
  min_vcpus:
    description: Minimum vCPUs (EC2 and SPOT only). Keep 0 to scale to zero.
    type: int
    default: 0
  max_vcpus:
    description: Maximum vCPUs.
    type: int
    required: false
  instance_types:
    description: Instance types or families (EC2 and SPOT only).
    type: list
    elements: str
    default: []
  allocation_strategy:
    description: Allocation strategy (EC2 and SPOT only).
    type: str
    choices: [BEST_FIT, BEST_FIT_PROGRESSIVE, SPOT_CAPACITY_OPTIMIZED, SPOT_PRICE_CAPACITY_OPTIMIZED]
  bid_percentage:
    description: Maximum spot price as a percentage of the on-demand price (SPOT only).
    type: int
  image_type:
    description: C(ec2Configuration) image type, for example C(ECS_AL2023_NVIDIA) for GPU instances.
    type: str
  instance_role:
    description: Instance profile name or ARN for the ECS container instances (EC2 and SPOT only).
    type: str
  ec2_key_pair:
    description: EC2 key pair for SSH to the instances; omit for none.
    type: str
  launch_template:
    description:
      - EC2 launch template of the instances (EC2 and SPOT only), for example one that requires IMDSv2.
      - Give an explicit I(version) (a number), not C($Latest) or C($Default). Batch resolves those only when it
        creates the compute environment or happens to update its infrastructure, so a new template version would
        reach the instances at an unknown time. With a number, a new version changes the name hash, so the change
        becomes a new compute environment, like any other fleet setting.
    type: dict
    suboptions:
      id:
        description: Launch template id (C(lt-...)).
        type: str
        required: true
      version:
        description: Launch template version number.
        type: str
        required: true
  subnets:
    description: Subnet ids.
    type: list
    elements: str
    default: []
  security_group_ids:
    description: Security group ids.
    type: list
    elements: str
    default: []
  service_role:
    description: Service role ARN; omit to use the Batch service-linked role.
    type: str
  tags:
    description: Tags of the compute environment (and of its instances for EC2 and SPOT).
    type: dict
    default: {}
  wait_timeout:
    description: Seconds to wait for status changes.
    type: int
    default: 900
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: derby-batch
"""

EXAMPLES = r"""
- name: GPU compute environment that scales to zero
  derby_batch_compute_environment:
    name: derby-gpu
    type: SPOT
    allocation_strategy: SPOT_PRICE_CAPACITY_OPTIMIZED
    min_vcpus: 0
    max_vcpus: 16
    instance_types: [g4dn.xlarge, g5.xlarge]
    image_type: ECS_AL2023_NVIDIA
    instance_role: arn:aws:iam::123456789012:instance-profile/derby-ecs-instance
    launch_template: {id: lt-0123456789abcdef0, version: "3"}
    subnets: [subnet-1, subnet-2]
    security_group_ids: [sg-1]
  register: gpu_ce

- name: Remove older generations once the queue uses the new one
  derby_batch_compute_environment:
    state: absent
    name_prefix: derby-gpu-
    keep: ["{{ gpu_ce.compute_environment.name }}"]
    match_tags:
      derby-batch:stack: derby
"""

RETURN = r"""
compute_environment:
  description: The compute environment (empty with C(state=absent)).
  returned: always
  type: dict
  contains:
    name: {description: Full name including the settings hash., type: str}
    arn: {description: ARN., type: str}
    state: {description: ENABLED or DISABLED., type: str}
    compute_resources: {description: computeResources as Batch reports them., type: dict}
deleted:
  description: Names of the compute environments deleted (in check mode, those that would be).
  returned: always
  type: list
  elements: str
kept:
  description: Names of the compute environments not deleted because jobs still run on them (see I(jobs_on_queues)).
  returned: always
  type: list
  elements: str
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible.module_utils.derby_aws import (
    content_hash,
    drop_none,
    fail_if_invalid,
    JOB_STATUSES_ON_A_COMPUTE_ENVIRONMENT,
    jobs_on_compute_environment,
    tag_changes,
    wait_batch_valid,
    wait_for,
)
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

BATCH_SLR_NAME = "AWSServiceRoleForBatch"
BATCH_SLR_PATH = "/aws-service-role/batch.amazonaws.com/"
EC2_TYPES = ("EC2", "SPOT")


def name_of(value):
    """Name from a name or an ARN (``arn:...:compute-environment/NAME``)."""
    return value.rsplit("/", 1)[-1]


def describe_all(client):
    paginator = client.get_paginator("describe_compute_environments")
    envs = []
    for page in paginator.paginate():
        envs.extend(page["computeEnvironments"])
    return [env for env in envs if env.get("status") != "DELETED"]


def describe(client, name):
    envs = client.describe_compute_environments(computeEnvironments=[name], aws_retry=True)["computeEnvironments"]
    envs = [env for env in envs if env.get("status") != "DELETED" and name_of(env["computeEnvironmentName"]) == name]
    return envs[0] if envs else None


def fleet_settings(params):
    """The settings that cannot change in place: they name the compute environment."""
    ec2 = params["type"] in EC2_TYPES
    settings = {
        "type": params["type"],
        "subnets": sorted(params["subnets"]),
        "securityGroupIds": sorted(params["security_group_ids"]),
    }
    if ec2:
        settings.update(
            {
                "allocationStrategy": params["allocation_strategy"],
                "instanceTypes": sorted(params["instance_types"]),
                "instanceRole": params["instance_role"],
                "ec2KeyPair": params["ec2_key_pair"],
                "bidPercentage": params["bid_percentage"] if params["type"] == "SPOT" else None,
                "ec2Configuration": [{"imageType": params["image_type"]}] if params["image_type"] else None,
                "launchTemplate": launch_template(params["launch_template"]),
                "tags": params["tags"] or None,  # instance tags cannot be updated
            }
        )
    return drop_none(settings)


def launch_template(spec):
    """The launchTemplate of computeResources: an explicit version, so that a new one changes the name hash."""
    if not spec:
        return None
    return {"launchTemplateId": spec["id"], "version": str(spec["version"])}


def service_role_arn(module):
    """The given service role, else Batch's service-linked role (found by its path, created when missing)."""
    if module.params["service_role"]:
        return module.params["service_role"]
    iam = module.client("iam", retry_decorator=AWSRetry.jittered_backoff(retries=10))

    def find():
        paginator = iam.get_paginator("list_roles")
        for page in paginator.paginate(PathPrefix=BATCH_SLR_PATH):
            for role in page["Roles"]:
                return role["Arn"]
        return None

    arn = find()
    if arn:
        return arn
    if module.check_mode:
        return "arn:aws:iam::000000000000:role" + BATCH_SLR_PATH + BATCH_SLR_NAME
    try:
        return iam.create_service_linked_role(AWSServiceName="batch.amazonaws.com", aws_retry=True)["Role"]["Arn"]
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] == "EntityAlreadyExists" and find():  # created concurrently
            return find()
        raise


def wait_settled(module, client, name):
    return wait_batch_valid(module, "compute environment", name, lambda: describe(client, name))


def summary(env):
    if not env:
        return {}
    return {
        "name": name_of(env["computeEnvironmentName"]),
        "arn": env["computeEnvironmentArn"],
        "state": env.get("state"),
        "compute_resources": env.get("computeResources", {}),
    }


def ensure_present(module, client):
    params = module.params
    settings = fleet_settings(params)
    name = "{0}-{1}".format(params["name"], content_hash(settings, 8))
    state = "ENABLED" if params["enabled"] else "DISABLED"
    sizing = {"maxvCpus": params["max_vcpus"]}
    if params["type"] in EC2_TYPES:
        sizing["minvCpus"] = params["min_vcpus"]
    env = describe(client, name)

    if env is None:
        after = {"name": name, "state": state, "compute_resources": dict(settings, **sizing)}
        if module.check_mode:
            module.exit_json(
                changed=True, compute_environment=after, deleted=[], kept=[], diff={"before": {}, "after": after}
            )
        resources = dict(settings, **sizing)
        if params["type"] in EC2_TYPES:
            resources["desiredvCpus"] = params["min_vcpus"]  # start at the floor (0): nothing runs until a job comes
        request = {
            "computeEnvironmentName": name,
            "type": "MANAGED",
            "state": state,
            "computeResources": resources,
            "serviceRole": service_role_arn(module),
        }
        if params["tags"]:
            request["tags"] = params["tags"]
        client.create_compute_environment(aws_retry=True, **request)
        env = wait_settled(module, client, name)
        module.exit_json(
            changed=True,
            compute_environment=summary(env),
            deleted=[],
            kept=[],
            diff={"before": {}, "after": summary(env)},
        )

    fail_if_invalid(module, "compute environment", name, env)
    current = env.get("computeResources", {})
    current_sizing = {k: current.get(k) for k in sizing}
    update = {}
    if current_sizing != sizing:
        update["computeResources"] = sizing
    if env.get("state") != state:
        update["state"] = state
    to_set, to_remove = tag_changes(env.get("tags"), params["tags"])
    before = {"name": name, "state": env.get("state"), "sizing": current_sizing, "tags": env.get("tags") or {}}
    after = {"name": name, "state": state, "sizing": sizing, "tags": params["tags"]}
    changed = bool(update or to_set or to_remove)
    if changed and not module.check_mode:
        if update:
            client.update_compute_environment(computeEnvironment=name, aws_retry=True, **update)
        if to_remove:
            client.untag_resource(resourceArn=env["computeEnvironmentArn"], tagKeys=to_remove, aws_retry=True)
        if to_set:
            client.tag_resource(resourceArn=env["computeEnvironmentArn"], tags=to_set, aws_retry=True)
        env = wait_settled(module, client, name)
    module.exit_json(
        changed=changed,
        compute_environment=summary(env),
        requested_update=update,
        deleted=[],
        kept=[],
        diff={"before": before, "after": after},
    )


def queues_using(client, arn, name):
    paginator = client.get_paginator("describe_job_queues")
    users = []
    for page in paginator.paginate():
        for queue in page["jobQueues"]:
            if queue.get("status") == "DELETED":
                continue
            for entry in queue.get("computeEnvironmentOrder", []):
                if entry["computeEnvironment"] in (arn, name) or name_of(entry["computeEnvironment"]) == name:
                    users.append(queue["jobQueueName"])
    return users


def jobs_of(client, queues):
    """The STARTING and RUNNING jobs of the queues, described (their container says where they run)."""
    ids = []
    paginator = client.get_paginator("list_jobs")
    for queue in queues:
        for status in JOB_STATUSES_ON_A_COMPUTE_ENVIRONMENT:
            for page in paginator.paginate(jobQueue=queue, jobStatus=status):
                ids.extend(job["jobId"] for job in page["jobSummaryList"])
    jobs = []
    for start in range(0, len(ids), 100):
        jobs.extend(client.describe_jobs(jobs=ids[start : start + 100], aws_retry=True)["jobs"])
    return jobs


def delete_one(module, client, env):
    """Disable, wait, delete. In check mode only report: the queue this run would move off it has not moved yet."""
    if module.check_mode:
        return
    name = name_of(env["computeEnvironmentName"])
    users = queues_using(client, env["computeEnvironmentArn"], name)
    if users:
        module.fail_json(msg="compute environment {0} is still used by job queues {1}".format(name, users))
    if env.get("state") != "DISABLED":
        client.update_compute_environment(computeEnvironment=name, state="DISABLED", aws_retry=True)
        wait_settled(module, client, name)
    wait_for(module, "compute environment {0} to settle".format(name), lambda: _not_updating(client, name), 600)
    client.delete_compute_environment(computeEnvironment=name, aws_retry=True)
    wait_for(
        module,
        "compute environment {0} to be deleted".format(name),
        lambda: describe(client, name) is None,
        module.params["wait_timeout"],
    )


def _not_updating(client, name):
    env = describe(client, name)
    return env is None or env.get("status") not in ("CREATING", "UPDATING", "DELETING")


def ensure_absent(module, client):
    params = module.params
    if params["name_prefix"]:
        targets = [
            env
            for env in describe_all(client)
            if name_of(env["computeEnvironmentName"]).startswith(params["name_prefix"])
            and name_of(env["computeEnvironmentName"]) not in params["keep"]
            and all((env.get("tags") or {}).get(k) == v for k, v in params["match_tags"].items())
        ]
    else:
        env = describe(client, params["name"])
        targets = [env] if env else []
    jobs = jobs_of(client, params["jobs_on_queues"]) if targets and params["jobs_on_queues"] else []
    kept = []
    for env in targets:
        name = name_of(env["computeEnvironmentName"])
        running = jobs_on_compute_environment(env, jobs)
        if running:
            module.warn(
                "compute environment {0} is not deleted: jobs {1} still run on it; a later run deletes it once "
                "they are done".format(name, ", ".join(running[:10]) + (" ..." if len(running) > 10 else ""))
            )
            kept.append(name)
            continue
        delete_one(module, client, env)
    deleted = sorted(
        name_of(env["computeEnvironmentName"]) for env in targets if name_of(env["computeEnvironmentName"]) not in kept
    )
    module.exit_json(
        changed=bool(deleted),
        compute_environment={},
        deleted=deleted,
        kept=sorted(kept),
        diff={"before": {"compute_environments": deleted}, "after": {"compute_environments": []}},
    )


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            name_prefix=dict(type="str"),
            keep=dict(type="list", elements="str", default=[]),
            match_tags=dict(type="dict", default={}),
            jobs_on_queues=dict(type="list", elements="str", default=[]),
            type=dict(type="str", choices=["EC2", "SPOT", "FARGATE", "FARGATE_SPOT"], default="EC2"),
            enabled=dict(type="bool", default=True),
            min_vcpus=dict(type="int", default=0),
            max_vcpus=dict(type="int"),
            instance_types=dict(type="list", elements="str", default=[]),
            allocation_strategy=dict(
                type="str",
                choices=[
                    "BEST_FIT",
                    "BEST_FIT_PROGRESSIVE",
                    "SPOT_CAPACITY_OPTIMIZED",
                    "SPOT_PRICE_CAPACITY_OPTIMIZED",
                ],
            ),
            bid_percentage=dict(type="int"),
            image_type=dict(type="str"),
            instance_role=dict(type="str"),
            ec2_key_pair=dict(type="str", no_log=False),
            launch_template=dict(
                type="dict",
                options=dict(id=dict(type="str", required=True), version=dict(type="str", required=True)),
            ),
            subnets=dict(type="list", elements="str", default=[]),
            security_group_ids=dict(type="list", elements="str", default=[]),
            service_role=dict(type="str"),
            tags=dict(type="dict", default={}),
            wait_timeout=dict(type="int", default=900),
        ),
        required_one_of=[["name", "name_prefix"]],
        required_if=[
            ["state", "present", ["name", "max_vcpus", "subnets"]],
        ],
        supports_check_mode=True,
    )
    if module.params["state"] == "present" and module.params["type"] in EC2_TYPES:
        missing = [k for k in ("instance_types", "instance_role", "allocation_strategy") if not module.params[k]]
        if missing:
            module.fail_json(msg="type {0} needs {1}".format(module.params["type"], ", ".join(missing)))
    template = module.params["launch_template"]
    if template and template["version"].startswith("$"):
        module.fail_json(
            msg="launch_template version {0}: give a version number; Batch resolves $Latest and $Default only when it "
            "creates or happens to update the compute environment".format(template["version"])
        )
    client = module.client("batch", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    try:
        if module.params["state"] == "present":
            ensure_present(module, client)
        ensure_absent(module, client)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="Batch compute environment")


if __name__ == "__main__":
    main()
