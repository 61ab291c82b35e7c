"""Persistence of the local stack: moto keeps everything in memory, the data directory keeps it across runs.

`save` writes the bucket objects (only those whose ETag changed), then the table items (DynamoDB JSON, types intact);
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
        """Items read first, objects written first: a crash mid-save never leaves an item pointing at an object
        the data directory lacks.

        The job writes its result object before the item that names it, so every object an item read here points
        at is already in the bucket when the bucket is read after it (read the other way round, an object and its
        item written in between would leave the item without the object). On disk, objects (and a manifest that
        still lists the objects an earlier save's items may name) come before the items; objects deleted from the
        bucket leave the manifest and the disk only once the items are written.
        """
        with self._lock:
            items: dict[str, list[dict[str, Any]]] = {}
            for table in self._tables:
                items[table] = []
                for page in self._ddb.get_paginator("scan").paginate(TableName=table):
                    items[table] += page["Items"]
            buckets = [bucket["Name"] for bucket in self._s3.list_buckets()["Buckets"]]
            removed = {bucket: self._save_bucket(bucket) for bucket in buckets}
            for table, table_items in items.items():
                write_json(self._paths.items / f"{table}.json", table_items)
            for bucket, keys in removed.items():
                self._forget(bucket, keys)

    def _save_bucket(self, bucket: str) -> set[str]:
        """Copy new and changed objects, then the manifest (still listing removed keys); returns the removed keys."""
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
        removed = old.keys() - new.keys()
        kept = new | {key: old[key] for key in removed}
        if kept != old:
            write_json(manifest_path, kept)
        return removed

    def _forget(self, bucket: str, keys: set[str]) -> None:
        """Drop objects deleted from the bucket from the manifest, then their files (once no saved item names them)."""
        if not keys:
            return
        directory = self._paths.objects / bucket
        manifest: dict[str, dict[str, str]] = read_json(directory / "manifest.json", {})
        gone = {key: manifest.pop(key) for key in keys if key in manifest}
        write_json(directory / "manifest.json", manifest)
        for entry in gone.values():
            (directory / "objects" / entry["file"]).unlink(missing_ok=True)

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
