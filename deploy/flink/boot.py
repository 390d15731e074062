"""The Python SDK worker's boot command for `--environment_type=PROCESS` on the local Flink cluster.

Each TaskManager runs this (through `.flink/boot`, which `make flink-up` writes) with the flags of
Beam's container contract: it asks the runner's provision service for the pipeline options, then
starts the SDK harness with them, as Beam's own boot program does in a container. The worker
inherits the TaskManager's environment, which is where CONSENTGATE_PSEUDONYM_KEY comes from.

(Beam's shared worker pool, `--environment_type=EXTERNAL`, cannot serve two TaskManagers: both
number their workers from 1, and one TaskManager's "stop worker 1-1" stops the other's.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import grpc
from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
from apache_beam.runners.worker import sdk_worker_main
from google.protobuf import json_format


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    for flag in (
        "id",
        "logging_endpoint",
        "artifact_endpoint",
        "provision_endpoint",
        "control_endpoint",
        "semi_persist_dir",
    ):
        parser.add_argument(f"--{flag}", default="")
    args, _ = parser.parse_known_args(argv)
    with grpc.insecure_channel(args.provision_endpoint) as channel:
        info = (
            beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
            .GetProvisionInfo(
                beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=[("worker_id", args.id)]
            )
            .info
        )
    options = json_format.MessageToDict(info.pipeline_options)
    logging_url = info.logging_endpoint.url or args.logging_endpoint
    control_url = info.control_endpoint.url or args.control_endpoint
    os.environ.update(
        WORKER_ID=args.id,
        PIPELINE_OPTIONS=json.dumps(options),
        CONTROL_API_SERVICE_DESCRIPTOR=f'url: "{control_url}"',
        LOGGING_API_SERVICE_DESCRIPTOR=f'url: "{logging_url}"',
        RUNNER_CAPABILITIES=" ".join(info.runner_capabilities),
    )
    if args.semi_persist_dir:
        os.environ["SEMI_PERSISTENT_DIRECTORY"] = args.semi_persist_dir
    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    main(sys.argv[1:])
