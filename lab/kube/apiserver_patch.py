"""
The apiserver double's patches (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go):
JSON merge patch (RFC 7386), JSON patch (RFC 6902), and a strategic merge patch applied
as a merge patch (lists replaced whole, not merged by key).

Part of the lab's kube-apiserver double (kube_apiserver.py); never imported by product code.
"""

from __future__ import annotations

import copy

try:
    from lab.kube import apiserver_api
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import apiserver_api  # type: ignore[no-redef]


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target, patch):
    """A strategic merge patch applied as a merge patch, without its directives: lists are
    replaced whole, not merged by key (the double's one simplification here)."""
    if isinstance(patch, dict):
        patch = {
            key: strategic_merge_patch(None, value)
            for key, value in patch.items()
            if not key.startswith("$")
        }
    return merge_patch(target, patch) if target is not None else patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise apiserver_api.bad_request(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _walk(document, parts: list[str]):
    for part in parts:
        try:
            document = document[int(part)] if isinstance(document, list) else document[part]
        except (KeyError, IndexError, ValueError) as error:
            raise apiserver_api.ApiError(
                422, "Invalid", f"path {'/'.join(parts)!r} not found"
            ) from error
    return document


def json_patch(document, operations: list) -> dict:
    """RFC 6902: add, remove, replace, test."""
    document = copy.deepcopy(document)
    for operation in operations:
        op, parts = operation.get("op"), _pointer(operation.get("path", ""))
        if not parts:
            raise apiserver_api.ApiError(
                422, "Invalid", "a JSON patch may not replace the whole object"
            )
        parent, last = _walk(document, parts[:-1]), parts[-1]
        if op == "test":
            if _walk(document, parts) != operation.get("value"):
                raise apiserver_api.ApiError(422, "Invalid", f"test failed at {operation['path']}")
        elif op == "remove":
            _walk(document, parts)
            del parent[int(last) if isinstance(parent, list) else last]
        elif op in ("add", "replace"):
            if op == "replace":
                _walk(document, parts)
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if op == "add":
                    parent.insert(index, operation["value"])
                else:
                    parent[index] = operation["value"]
            else:
                parent[last] = operation["value"]
        else:
            raise apiserver_api.ApiError(422, "Invalid", f"unsupported JSON patch operation {op!r}")
    return document
