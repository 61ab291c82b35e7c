"""Persistence of the local stack: moto keeps everything in memory, the data directory keeps it across runs.

`save` writes the table items (DynamoDB JSON, types intact) and the bucket objects (only those whose ETag changed);
`restore` puts them back into a fresh moto. Job records and job logs are written by the executor as they happen.
Restoring items writes them again, so the stream shows each chunk once more: the router treats that like a replay,
which is what picks up a chunk whose next step was never claimed before the stack stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from pathlib import Path
from typing import Any

from cli.local.files import read_json, write_bytes, write_json
from cli.local.paths import LocalPaths


def _object_file(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Snapshot:
    """Saves and restores the items of `tables` and the objects of every bucket, through boto3 clients."""

    def __init__(self, dynamodb: Any, s3: Any, tables: list[str], paths: LocalPaths) -> None:
        self._ddb, self._s3, self._tables, self._paths = dynamodb, s3, tables, paths
        self._lock = threading.Lock()

    def save(self) -> None:
        with self._lock:
            for table in self._tables:
                items: list[dict[str, Any]] = []
                for page in self._ddb.get_paginator("scan").paginate(TableName=table):
                    items += page["Items"]
                write_json(self._paths.items / f"{table}.json", items)
            for bucket in self._s3.list_buckets()["Buckets"]:
                self._save_bucket(bucket["Name"])

    def _save_bucket(self, bucket: str) -> None:
        directory = self._paths.objects / bucket
        manifest_path = directory / "manifest.json"
        old: dict[str, dict[str, str]] = read_json(manifest_path, {})
        new: dict[str, dict[str, str]] = {}
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                key, etag = obj["Key"], obj["ETag"]
                entry = old.get(key)
                if entry is None or entry["etag"] != etag:
                    response = self._s3.get_object(Bucket=bucket, Key=key)
                    entry = {"etag": etag, "file": _object_file(key), "content_type": response.get("ContentType", "")}
                    write_bytes(directory / "objects" / entry["file"], response["Body"].read())
                new[key] = entry
        for key in old.keys() - new.keys():
            (directory / "objects" / old[key]["file"]).unlink(missing_ok=True)
        if new != old:
            write_json(manifest_path, new)

    def restore(self) -> tuple[int, int]:
        """Objects first, then items (an item may point at an object). Returns (objects, items) restored."""
        objects = sum(self._restore_bucket(path) for path in sorted(self._paths.objects.glob("*/manifest.json")))
        items = 0
        for table in self._tables:
            for item in read_json(self._paths.items / f"{table}.json", []):
                self._ddb.put_item(TableName=table, Item=item)
                items += 1
        return objects, items

    def _restore_bucket(self, manifest_path: Path) -> int:
        bucket = manifest_path.parent.name
        with contextlib.suppress(self._s3.exceptions.BucketAlreadyOwnedByYou, self._s3.exceptions.BucketAlreadyExists):
            self._s3.create_bucket(Bucket=bucket)
        manifest: dict[str, dict[str, str]] = read_json(manifest_path, {})
        for key, entry in manifest.items():
            body = (manifest_path.parent / "objects" / entry["file"]).read_bytes()
            extra = {"ContentType": entry["content_type"]} if entry.get("content_type") else {}
            self._s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        return len(manifest)
