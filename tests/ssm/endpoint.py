#!/usr/bin/env python3
"""A local AWS Systems Manager (SSM) endpoint for the test suite, held to botocore's SSM model.

moto implements Parameter Store but not Compliance or Inventory, so the tests talk to this server
instead: it speaks awsJson1_1 (POST /, ``X-Amz-Target: AmazonSSM.<Operation>``, JSON bodies,
timestamps as epoch seconds), serves the Compliance and Inventory operations from memory and
forwards every other operation verbatim to a moto server (``--moto-url``).

Every request, served here or forwarded, is first held to botocore's published SSM model:

* botocore's ``ParamValidator``: required members, JSON types, unknown members (stricter than the
  service, on purpose: a member the model does not know is a client bug), minimum lengths;
* a second pass over what ParamValidator leaves out: ``max`` lengths, ranges and list/map sizes,
  map ``min`` sizes, ``enum`` and ``pattern`` (Java regular expressions, as the service evaluates
  them: the whole value must match, ``\\w``/``\\d``/``\\s`` are ASCII, ``\\p{L}`` classes are
  Unicode categories);
* timestamps must be JSON numbers (epoch seconds) on the wire.

Type errors are answered as the service does, 400 ``SerializationException``; every other model
violation 400 ``ValidationException`` with one ``Value ... at 'Path' failed to satisfy constraint:
...`` clause per violation. Errors are awsJson1_1 bodies: ``{"__type": ..., "message": ...}`` for
the service framework's errors (validation, signature, throttling: namespaced ``__type`` as the
service sends it), ``{"__type": ..., "Message": ...}`` plus the modelled members for the
operation's modelled errors (``message`` for the few error shapes without members). Responses this server builds are held to the output shapes too: a bug
here is a 500 ``InternalServerError`` naming the violation, never a silent pass.

Authentication: a SigV4 ``Authorization`` header must be present and well formed, scoped to
service ``ssm`` and ``--region`` (default us-east-1), with ``X-Amz-Date`` within 15 minutes; with
``--secret-key`` the signature itself is recomputed with botocore's signer and compared.

Semantics (SSM API Reference):

* PutComplianceItems: ResourceType ``ManagedInstance`` with a managed-node id; UploadType COMPLETE
  (default) replaces the resource's items of that ComplianceType (an empty list removes the type),
  PARTIAL upserts by item Id; an ItemContentHash equal to the stored one ignores the request (200);
  at most 10 ``Custom:`` compliance types (ComplianceTypeCountLimitExceededException).
* ListComplianceItems, ListResourceComplianceSummaries, ListComplianceSummaries: filters with
  EQUAL / NOT_EQUAL / BEGIN_WITH / LESS_THAN / GREATER_THAN (severities compare by rank), MaxResults
  (default 10) and NextToken. A resource's type is COMPLIANT only if all its items are, its
  OverallSeverity the worst non-compliant severity (UNSPECIFIED when none).
* PutInventory: ``AWS:`` types from the documented list or ``Custom:<name>``
  (InvalidTypeNameException); at most 20 custom types (CustomSchemaCountLimitExceededException)
  and 50 attributes per type (InvalidItemContentException); a ContentHash equal to the stored one
  leaves that item as it was. GetInventory (Filters ``Type.Attribute``, ResultAttributes; no
  Aggregators) and ListInventoryEntries (default 50 per page).

Control API (not AWS operations; JSON in and out):

* ``POST /__faults`` ``{"operation": "PutComplianceItems", "kind": "throttle", "count": 2}`` (or a
  list of such): queue faults for the next requests of that operation, consumed in order, before
  authentication and validation. Kinds: ``http500`` (500 InternalServerError), ``throttle`` (400
  ThrottlingException "Rate exceeded"), ``reset`` (read the request, then close with a TCP RST),
  ``hang`` (read the request and never answer; the connection is dropped when the client gives up).
  ``GET /__faults`` shows what is still queued.
* ``GET /__log``: every AWS request received, in arrival order: ``seq``, ``operation``, ``body``
  (the decoded JSON, or the raw text), ``outcome`` (``stored``, ``no-op``, ``read``, ``forwarded``,
  a fault kind, or the error type such as ``ValidationException``), ``status`` (null for reset and
  hang) and ``message`` (for errors).
* ``POST /__reset``: forget everything stored, logged and queued.

TLS: with ``--tls-dir DIR`` the endpoint serves HTTPS as the real one does. It makes a private CA
(``DIR/ca.pem``, the only file a client needs to trust it) and a server certificate it signs for
``127.0.0.1`` and ``localhost`` (P-256 keys, SHA-256, valid for one day), and announces
``listening https://127.0.0.1:PORT``. The control API is then HTTPS too.

Usage: ``python tests/ssm/endpoint.py --port 0 [--moto-url URL] [--secret-key KEY] [--region R]
[--tls-dir DIR]`` binds 127.0.0.1, prints ``listening http(s)://127.0.0.1:PORT`` on stdout once
ready, logs to stderr and runs until killed.
"""

import argparse
import base64
import datetime
import http.client
import http.server
import ipaddress
import json
import logging
import re
import select
import socket
import ssl
import struct
import sys
import threading
import unicodedata
import urllib.parse
import uuid

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from botocore.validate import ParamValidator

LOG = logging.getLogger("ssm-endpoint")
MODEL = botocore.session.get_session().get_service_model("ssm")
TARGET_PREFIX = MODEL.metadata["targetPrefix"] + "."
JSON_TYPE = "application/x-amz-json-1.1"
FAULT_KINDS = ("http500", "throttle", "reset", "hang")
SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNSPECIFIED"]  # worst first
SEVERITY_COUNT = {s: s.capitalize() + "Count" for s in SEVERITIES}
MANAGED_NODE = re.compile(r"(i-(\w{8}|\w{17})|mi-\w{17})", re.ASCII)
# the inventory types SSM defines (User Guide, "Metadata collected by inventory")
AWS_INVENTORY_TYPES = {
    "AWS:AWSComponent", "AWS:Application", "AWS:BillingInfo", "AWS:ComplianceItem",
    "AWS:ComplianceSummary", "AWS:File", "AWS:InstanceDetailedInformation",
    "AWS:InstanceInformation", "AWS:Network", "AWS:PatchSummary", "AWS:ResourceGroup",
    "AWS:Service", "AWS:Tag", "AWS:WindowsRegistry", "AWS:WindowsRole", "AWS:WindowsUpdate",
}
MAX_CUSTOM_COMPLIANCE_TYPES = 10  # ComplianceTypeCountLimitExceededException
MAX_CUSTOM_INVENTORY_TYPES = 20  # "a maximum of 20 custom inventory types per AWS account"
MAX_INVENTORY_ATTRIBUTES = 50  # InventoryItemSchema.Attributes: at most 50


class ApiError(Exception):
    """An error answer: HTTP status, awsJson1_1 body; ``outcome`` names it in the log."""

    def __init__(self, status, type_name, message, key="message", **members):
        super().__init__(message)
        self.status = status
        self.body = {"__type": type_name, key: message, **members}
        self.outcome = type_name.rpartition("#")[2]


def framework(namespace, name, message, status=400):
    return ApiError(status, f"com.amazon.coral.{namespace}#{name}", message)


def modelled(name, message, **members):
    """One of the operation's modelled errors: its members as the model names them."""
    shape = MODEL.shape_for(name)  # a KeyError here is an endpoint bug
    assert shape.metadata.get("exception") and set(members) <= set(shape.members), (name, members)
    key = "Message" if "Message" in shape.members else "message"
    return ApiError(500 if name == "InternalServerError" else 400, name, message, key, **members)


# --- Java regular expressions as Python ones --------------------------------------------------

_CATEGORIES = {}
_PATTERNS = {}


def _category_class(category):
    """The body of a character class matching Unicode general category ``category`` (``\\p{L}``)."""
    if not _CATEGORIES:
        ranges = {}
        for cp in range(sys.maxunicode + 1):
            cat = unicodedata.category(chr(cp))
            for key in (cat[0], cat):
                spans = ranges.setdefault(key, [])
                if spans and spans[-1][1] == cp - 1:
                    spans[-1][1] = cp
                else:
                    spans.append([cp, cp])
        for key, spans in ranges.items():
            _CATEGORIES[key] = "".join(
                f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in spans)
    if category not in _CATEGORIES:
        raise ValueError(f"unknown Unicode category \\p{{{category}}}")
    return _CATEGORIES[category]


def java_pattern(pattern):
    """Compile a model pattern with Java's semantics (matched against the whole value)."""
    if pattern in _PATTERNS:
        return _PATTERNS[pattern]
    out, i, in_class, after_class_escape = [], 0, False, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1]
            if nxt == "P":
                raise ValueError(f"unsupported Java construct \\P in {pattern!r}")
            if nxt == "p":
                end = pattern.index("}", i)
                body = _category_class(pattern[i + 3:end])
                out.append(body if in_class else f"[{body}]")
                i, after_class_escape = end + 1, True
                continue
            out.append(pattern[i:i + 2])
            i, after_class_escape = i + 2, in_class and nxt in "wdsWDS"
            continue
        if in_class:
            if c == "-" and after_class_escape:
                c = "\\-"  # Java reads "[\w-x]" as \w, '-', 'x'; Python calls it a bad range
            elif c == "[":
                c = "\\["
            elif c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "^":
                c, i = "[^", i + 1
        elif c == ".":
            c = "[^\\n\\r\\x85\\u2028\\u2029]"  # Java's '.' stops at every line terminator
        out.append(c)
        i, after_class_escape = i + 1, False
    _PATTERNS[pattern] = re.compile("".join(out), re.ASCII)
    return _PATTERNS[pattern]


# --- model validation -------------------------------------------------------------------------


def _shown(value):
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= 80:
        return text
    return f"{text[:60]}... ({len(value)} {'chars' if isinstance(value, str) else 'entries'})"


def _path(name):
    return name.lstrip(".") or "input"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _constraints(value, shape, path, found):
    """What ParamValidator does not check: max, map min, enum, pattern; timestamps as numbers."""
    meta, kind = shape.metadata, shape.type_name
    where = _path(path)
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _constraints(value[name], member, f"{path}.{name}", found)
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            found.append(("validation", f"Value at '{where}' failed to satisfy constraint: Member must "
                          f"have length less than or equal to {meta['max']} (has {len(value)})"))
        for index, item in enumerate(value):
            _constraints(item, shape.member, f"{path}[{index}]", found)
    elif kind == "map" and isinstance(value, dict):
        for bound, op, word in (("min", int.__lt__, "greater"), ("max", int.__gt__, "less")):
            if bound in meta and op(len(value), meta[bound]):
                found.append(("validation", f"Value at '{where}' failed to satisfy constraint: Map "
                              f"must have {word} than or equal to {meta[bound]} entries (has {len(value)})"))
        for key, item in value.items():
            _constraints(key, shape.key, f"{path} (key {key!r})", found)
            _constraints(item, shape.value, f"{path}.{key}", found)
    elif kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            found.append(("validation", f"Value {_shown(value)} at '{where}' failed to satisfy constraint: "
                          f"Member must have length less than or equal to {meta['max']}"))
        if shape.enum and value not in shape.enum:
            found.append(("validation", f"Value {_shown(value)} at '{where}' failed to satisfy constraint: "
                          f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"))
        if "pattern" in meta and not java_pattern(meta["pattern"]).fullmatch(value):
            found.append(("validation", f"Value {_shown(value)} at '{where}' failed to satisfy constraint: "
                          f"Member must satisfy regular expression pattern: {meta['pattern']}"))
    elif kind in ("integer", "long", "float", "double"):
        if isinstance(value, bool) or (kind in ("integer", "long") and isinstance(value, float)):
            found.append(("serialization", f"Value {_shown(value)} at '{where}' is not an {kind}"))
        elif _is_number(value) and "max" in meta and value > meta["max"]:
            found.append(("validation", f"Value {value} at '{where}' failed to satisfy constraint: "
                          f"Member must have value less than or equal to {meta['max']}"))
    elif kind == "timestamp" and not _is_number(value):
        found.append(("serialization", f"Value {_shown(value)} at '{where}' is not a timestamp: "
                      "awsJson1_1 sends timestamps as epoch seconds (a JSON number)"))


def model_problems(value, shape):
    """Every way ``value`` breaks ``shape``: [(\"serialization\"|\"validation\", text)]."""
    found = []
    for reason, name, info in ParamValidator().validate(value, shape)._errors:
        where = _path(name)
        if reason == "missing required field":
            found.append(("validation", f"Value null at '{_path(name + '.' + info['required_name'])}' "
                          "failed to satisfy constraint: Member must not be null"))
        elif reason == "unknown field":
            found.append(("validation", f"Unknown member {info['unknown_param']!r} at '{where}': the "
                          f"model's members are {', '.join(info['valid_names'])}"))
        elif reason == "invalid type":
            found.append(("serialization", f"Value {_shown(info['param'])} at '{where}' has the wrong "
                          f"JSON type ({type(info['param']).__name__})"))
        elif reason == "invalid length":
            found.append(("validation", f"Value at '{where}' failed to satisfy constraint: Member must "
                          f"have length greater than or equal to {info['min_allowed']} (has {info['param']})"))
        elif reason == "invalid range":
            found.append(("validation", f"Value {info['param']} at '{where}' failed to satisfy "
                          f"constraint: Member must have value greater than or equal to {info['min_allowed']}"))
        else:
            found.append(("validation", f"'{where}': {reason} {info}"))
    _constraints(value, shape, "", found)
    return found


def validate_request(operation, body):
    found = model_problems(body, operation.input_shape) if operation.input_shape else []
    serialization = [text for kind, text in found if kind == "serialization"]
    if serialization:
        raise framework("service", "SerializationException", "; ".join(serialization))
    if found:
        plural = "s" if len(found) > 1 else ""
        raise framework("validate", "ValidationException",
                        f"{len(found)} validation error{plural} detected: "
                        + "; ".join(text for _, text in found))


# --- pagination and filters -------------------------------------------------------------------


def page(request, results, operation, default):
    """One page of ``results`` from NextToken, MaxResults wide; the next token or None."""
    start = 0
    if request.get("NextToken") is not None:
        try:
            token = json.loads(base64.urlsafe_b64decode(request["NextToken"].encode()))
            start = int(token["offset"])
            assert token["op"] == operation and 0 <= start <= len(results)
        except Exception:
            raise modelled("InvalidNextToken", "The specified token isn't valid.")
    end = start + request.get("MaxResults", default)
    token = None
    if end < len(results):
        token = base64.urlsafe_b64encode(json.dumps({"op": operation, "offset": end}).encode()).decode()
    return results[start:end], token


def _compare(key, a, b):
    if key in ("Severity", "OverallSeverity") and a in SEVERITIES and b in SEVERITIES:
        return SEVERITIES.index(b) - SEVERITIES.index(a)  # > 0: a is worse (greater) than b
    try:
        x, y = float(a), float(b)
    except ValueError:
        x, y = a, b
    return (x > y) - (x < y)


def compliance_filter_matches(filters, record, keys):
    for f in filters or []:
        key, values, kind = f.get("Key"), f.get("Values") or [], f.get("Type", "EQUAL")
        if key not in keys:
            raise modelled("InvalidFilter", f"The filter key {key!r} isn't valid: use one of {', '.join(keys)}.")
        have = record.get(key)
        ok = {
            "EQUAL": lambda: have in values,
            "NOT_EQUAL": lambda: have not in values,
            "BEGIN_WITH": lambda: have is not None and any(have.startswith(v) for v in values),
            "LESS_THAN": lambda: have is not None and _compare(key, have, values[0]) < 0,
            "GREATER_THAN": lambda: have is not None and _compare(key, have, values[0]) > 0,
        }[kind]()
        if not ok:
            return False
    return True


# --- the store and the operations ---------------------------------------------------------------


class Store:
    def __init__(self):
        self.compliance = {}  # (resource id, compliance type) -> record
        self.inventory = {}  # instance id -> {type name: item}

    def custom_inventory_types(self):
        return {t for items in self.inventory.values() for t in items if t.startswith("Custom:")}


def put_compliance_items(store, req):
    if req["ResourceType"] != "ManagedInstance":
        raise modelled("InvalidResourceType", "The resource type isn't valid. ManagedInstance is the only "
                       f"supported resource type, got {req['ResourceType']!r}.")
    if not MANAGED_NODE.fullmatch(req["ResourceId"]):
        raise modelled("InvalidResourceId", f"The resource ID {req['ResourceId']!r} isn't valid. Verify "
                       "that you entered the correct ID and try again.")
    ctype, key = req["ComplianceType"], (req["ResourceId"], req["ComplianceType"])
    current = store.compliance.get(key)
    content_hash = req.get("ItemContentHash")
    if current and content_hash is not None and current["hash"] == content_hash:
        return {}, "no-op"
    custom = {t for _, t in store.compliance if t.startswith("Custom:")}
    if ctype.startswith("Custom:") and ctype not in custom and len(custom) >= MAX_CUSTOM_COMPLIANCE_TYPES:
        raise modelled("ComplianceTypeCountLimitExceededException", "You specified too many custom "
                       f"compliance types. You can specify a maximum of {MAX_CUSTOM_COMPLIANCE_TYPES} different types.")
    partial = req.get("UploadType", "COMPLETE") == "PARTIAL"
    items = dict(current["items"]) if partial and current else {}
    for entry in req["Items"]:
        items[entry["Id"] if "Id" in entry else ("no id", uuid.uuid4().hex)] = dict(entry)
    if not items:
        store.compliance.pop(key, None)
    else:
        store.compliance[key] = {"resource_type": req["ResourceType"], "items": items,
                                 "summary": req["ExecutionSummary"], "hash": content_hash}
    return {}, "stored"


def _compliance_records(store):
    for (resource, ctype), rec in sorted(store.compliance.items()):
        for item in rec["items"].values():
            out = {"ComplianceType": ctype, "ResourceType": rec["resource_type"], "ResourceId": resource,
                   **item, "ExecutionSummary": rec["summary"]}
            yield out


def list_compliance_items(store, req):
    resources, types = req.get("ResourceIds"), req.get("ResourceTypes")
    keys = ("ComplianceType", "Status", "Severity", "Id", "Title")
    items = [r for r in _compliance_records(store)
             if (resources is None or r["ResourceId"] in resources)
             and (types is None or r["ResourceType"] in types)
             and compliance_filter_matches(req.get("Filters"), r, keys)]
    shown, token = page(req, items, "ListComplianceItems", 10)
    return {"ComplianceItems": shown, **({"NextToken": token} if token else {})}, "read"


def _severity_summary(items):
    return {SEVERITY_COUNT[s]: sum(1 for i in items if i["Severity"] == s) for s in SEVERITIES}


def _resource_summary(resource, ctype, rec):
    items = list(rec["items"].values())
    bad = [i for i in items if i["Status"] == "NON_COMPLIANT"]
    good = [i for i in items if i["Status"] == "COMPLIANT"]
    worst = min((SEVERITIES.index(i["Severity"]) for i in bad), default=SEVERITIES.index("UNSPECIFIED"))
    return {"ComplianceType": ctype, "ResourceType": rec["resource_type"], "ResourceId": resource,
            "Status": "NON_COMPLIANT" if bad else "COMPLIANT", "OverallSeverity": SEVERITIES[worst],
            "ExecutionSummary": rec["summary"],
            "CompliantSummary": {"CompliantCount": len(good), "SeveritySummary": _severity_summary(good)},
            "NonCompliantSummary": {"NonCompliantCount": len(bad), "SeveritySummary": _severity_summary(bad)}}


def list_resource_compliance_summaries(store, req):
    keys = ("ComplianceType", "Status", "OverallSeverity", "ResourceId", "ResourceType")
    summaries = [s for s in (_resource_summary(r, t, rec) for (r, t), rec in sorted(store.compliance.items()))
                 if compliance_filter_matches(req.get("Filters"), s, keys)]
    shown, token = page(req, summaries, "ListResourceComplianceSummaries", 10)
    return {"ResourceComplianceSummaryItems": shown, **({"NextToken": token} if token else {})}, "read"


def list_compliance_summaries(store, req):
    """Per compliance type: how many resources are (non-)compliant, by their overall severity."""
    by_type = {}
    for (resource, ctype), rec in sorted(store.compliance.items()):
        summary = _resource_summary(resource, ctype, rec)
        if not compliance_filter_matches(req.get("Filters"), summary, ("ComplianceType", "ResourceType")):
            continue
        by_type.setdefault(ctype, []).append(summary)
    out = []
    for ctype, summaries in by_type.items():
        good = [{"Severity": s["OverallSeverity"]} for s in summaries if s["Status"] == "COMPLIANT"]
        bad = [{"Severity": s["OverallSeverity"]} for s in summaries if s["Status"] != "COMPLIANT"]
        out.append({"ComplianceType": ctype,
                    "CompliantSummary": {"CompliantCount": len(good), "SeveritySummary": _severity_summary(good)},
                    "NonCompliantSummary": {"NonCompliantCount": len(bad),
                                            "SeveritySummary": _severity_summary(bad)}})
    shown, token = page(req, out, "ListComplianceSummaries", 10)
    return {"ComplianceSummaryItems": shown, **({"NextToken": token} if token else {})}, "read"


def put_inventory(store, req):
    instance = req["InstanceId"]
    new_custom = set()
    for item in req["Items"]:
        name = item["TypeName"]
        if name.startswith("Custom:"):
            if name == "Custom:":
                raise modelled("InvalidTypeNameException", "The parameter type name isn't valid: "
                               "a custom type name needs a name after 'Custom:'.")
            new_custom.add(name)
        elif name not in AWS_INVENTORY_TYPES:
            raise modelled("InvalidTypeNameException", f"The parameter type name {name!r} isn't valid: "
                           "use Custom:<name> or one of " + ", ".join(sorted(AWS_INVENTORY_TYPES)) + ".")
        attributes = {a for entry in item.get("Content", []) for a in entry}
        if len(attributes) > MAX_INVENTORY_ATTRIBUTES:
            raise modelled("InvalidItemContentException", f"One or more content items isn't valid: {name} "
                           f"has {len(attributes)} attributes, at most {MAX_INVENTORY_ATTRIBUTES} are allowed.",
                           TypeName=name)
    custom = store.custom_inventory_types() | new_custom
    if len(custom) > MAX_CUSTOM_INVENTORY_TYPES:
        raise modelled("CustomSchemaCountLimitExceededException", "You have exceeded the limit for custom "
                       f"schemas ({len(custom)} custom types, at most {MAX_CUSTOM_INVENTORY_TYPES}). "
                       "Delete one or more custom schemas and try again.")
    stored = store.inventory.setdefault(instance, {})
    changed = False
    for item in req["Items"]:
        current = stored.get(item["TypeName"])
        if current and item.get("ContentHash") is not None and current.get("ContentHash") == item["ContentHash"]:
            continue
        stored[item["TypeName"]] = {k: item[k] for k in ("TypeName", "SchemaVersion", "CaptureTime",
                                                         "ContentHash") if k in item}
        stored[item["TypeName"]]["Content"] = [dict(e) for e in item.get("Content", [])]
        changed = True
    return {}, "stored" if changed else "no-op"


def _inventory_filter_matches(f, instance, data, default_type=None):
    type_name, _, attribute = f["Key"].rpartition(".")
    type_name = type_name or default_type
    if not type_name or not attribute or not re.match(r"(AWS|Custom):", type_name):
        raise modelled("InvalidFilter", f"The filter key {f['Key']!r} isn't valid: use TypeName.AttributeName.")
    have = [entry[attribute] for entry in data.get(type_name, {}).get("Content", []) if attribute in entry]
    if (type_name, attribute) == ("AWS:InstanceInformation", "InstanceId"):
        have.append(instance)
    values, kind = f["Values"], f.get("Type", "Equal")
    return {
        "Equal": lambda: any(h in values for h in have),
        "NotEqual": lambda: all(h not in values for h in have),
        "BeginWith": lambda: any(h.startswith(v) for h in have for v in values),
        "LessThan": lambda: any(_compare(attribute, h, values[0]) < 0 for h in have),
        "GreaterThan": lambda: any(_compare(attribute, h, values[0]) > 0 for h in have),
        "Exists": lambda: bool(have),
    }[kind]()


def get_inventory(store, req):
    if req.get("Aggregators"):
        raise ApiError(400, "NotImplementedByTestEndpoint", "GetInventory Aggregators are not implemented by "
                       "the test endpoint")
    wanted = [r["TypeName"] for r in req.get("ResultAttributes", [])] or None
    entities = []
    for instance, data in sorted(store.inventory.items()):
        if not all(_inventory_filter_matches(f, instance, data) for f in req.get("Filters", [])):
            continue
        shown = {t: item for t, item in sorted(data.items()) if wanted is None or t in wanted}
        if shown:
            entities.append({"Id": instance, "Data": shown})
    entities, token = page(req, entities, "GetInventory", 50)
    return {"Entities": entities, **({"NextToken": token} if token else {})}, "read"


def list_inventory_entries(store, req):
    instance, type_name = req["InstanceId"], req["TypeName"]
    data = store.inventory.get(instance, {})
    item = data.get(type_name)
    entries = []
    for entry in (item or {}).get("Content", []):
        one = {type_name: {"Content": [entry]}}
        if all(_inventory_filter_matches(f, instance, one, type_name) for f in req.get("Filters", [])):
            entries.append(entry)
    entries, token = page(req, entries, "ListInventoryEntries", 50)
    out = {"TypeName": type_name, "InstanceId": instance, "Entries": entries}
    if item:
        out.update(SchemaVersion=item["SchemaVersion"], CaptureTime=item["CaptureTime"])
    if token:
        out["NextToken"] = token
    return out, "read"


HANDLERS = {
    "PutComplianceItems": put_compliance_items,
    "ListComplianceItems": list_compliance_items,
    "ListResourceComplianceSummaries": list_resource_compliance_summaries,
    "ListComplianceSummaries": list_compliance_summaries,
    "PutInventory": put_inventory,
    "GetInventory": get_inventory,
    "ListInventoryEntries": list_inventory_entries,
}


# --- SigV4 ----------------------------------------------------------------------------------------

AUTH_RE = re.compile(r"AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]+)")


class _SignedAsSent(SigV4Auth):
    """botocore's SigV4 signer over exactly the headers the client says it signed."""

    def __init__(self, credentials, region, headers):
        super().__init__(credentials, "ssm", region)
        self._headers = headers

    def headers_to_sign(self, request):
        return self._headers


def check_auth(headers, path, body, region, secret_key):
    auth = headers.get("Authorization")
    if not auth:
        raise framework("service", "MissingAuthenticationTokenException", "Missing Authentication Token")
    m = AUTH_RE.fullmatch(auth.strip())
    if not m:
        raise framework("service", "IncompleteSignatureException", "Authorization header requires "
                        "'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=<64 hex>'; got "
                        f"{auth[:120]!r}")
    credential, signed, signature = m.groups()
    scope = credential.split("/")
    amz_date = headers.get("X-Amz-Date", "")
    if len(scope) != 5 or scope[4] != "aws4_request" or not re.fullmatch(r"\d{8}", scope[1]):
        raise framework("service", "IncompleteSignatureException", f"Credential {credential!r} must be "
                        "KEYID/YYYYMMDD/REGION/SERVICE/aws4_request")
    if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
        raise framework("service", "IncompleteSignatureException", "Authorization header requires existence "
                        f"of an ISO-8601 basic 'X-Amz-Date' header (got {amz_date!r})")
    names = signed.split(";")
    if "host" not in names or any(headers.get(n) is None for n in names):
        raise framework("service", "IncompleteSignatureException", f"SignedHeaders {signed!r} must include "
                        "host and only headers the request carries")
    if scope[1] != amz_date[:8]:
        raise framework("service", "InvalidSignatureException", "Date in Credential scope does not match "
                        "YYYYMMDD from ISO-8601 version of date from HTTP")
    if scope[3] != "ssm":
        raise framework("service", "InvalidSignatureException", "Credential should be scoped to correct "
                        f"service: 'ssm', not {scope[3]!r}.")
    if scope[2] != region:
        raise framework("service", "InvalidSignatureException", "Credential should be scoped to a valid "
                        f"region: {region!r}, not {scope[2]!r}.")
    signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    if abs((datetime.datetime.now(datetime.timezone.utc) - signed_at).total_seconds()) > 15 * 60:
        raise framework("service", "InvalidSignatureException", f"Signature expired: {amz_date} is more "
                        "than 15 minutes from the server's time")
    if secret_key is None:
        return
    header_map = HTTPHeaders()
    for name in names:
        for value in headers.get_all(name):
            header_map[name] = value
    request = AWSRequest(method="POST", url=f"http://{headers['Host']}{path}", data=body)
    request.context["timestamp"] = amz_date
    signer = _SignedAsSent(Credentials(scope[0], secret_key), region, header_map)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != signature:
        raise framework("service", "InvalidSignatureException", "The request signature we calculated does "
                        "not match the signature you provided. Check your AWS Secret Access Key and signing "
                        f"method. The Canonical String for this request should have been {canonical!r}")


# --- HTTP -----------------------------------------------------------------------------------------


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.store = Store()
        self.log = []
        self.faults = {}

    def arrive(self, operation, body):
        with self.lock:
            entry = {"seq": len(self.log) + 1, "operation": operation, "body": body,
                     "outcome": "pending", "status": None, "message": None}
            self.log.append(entry)
            queue = self.faults.get(operation)
            return entry, (queue.pop(0) if queue else None)

    def settle(self, entry, outcome, status, message=None):
        with self.lock:
            entry.update(outcome=outcome, status=status, message=message)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ssm-test-endpoint"

    def log_message(self, fmt, *args):
        LOG.info("%s %s", self.address_string(), fmt % args)

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(chunk)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, status, payload, content_type=JSON_TYPE):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        state = self.server.state
        if self.path == "/__log":
            with state.lock:
                return self.send(200, json.loads(json.dumps(state.log)), "application/json")
        if self.path == "/__faults":
            with state.lock:
                return self.send(200, state.faults, "application/json")
        self.send(404, {"message": f"no control path {self.path}"}, "application/json")

    def do_POST(self):
        body = self.read_body()
        if self.path.startswith("/__"):
            return self.control(body)
        self.aws(body)

    def control(self, body):
        state = self.server.state
        if self.path == "/__reset":
            with state.lock:
                state.store, state.log, state.faults = Store(), [], {}
            return self.send(200, {}, "application/json")
        if self.path == "/__faults":
            try:
                asks = json.loads(body)
                asks = asks if isinstance(asks, list) else [asks]
                for ask in asks:
                    if ask.get("operation") not in MODEL.operation_names or ask.get("kind") not in FAULT_KINDS:
                        raise ValueError(f"unknown operation or fault kind in {ask} (kinds: {FAULT_KINDS})")
                    int(ask.get("count", 1))
            except ValueError as e:
                return self.send(400, {"message": str(e)}, "application/json")
            with state.lock:
                for ask in asks:
                    state.faults.setdefault(ask["operation"], []).extend([ask["kind"]] * int(ask.get("count", 1)))
                return self.send(200, state.faults, "application/json")
        self.send(404, {"message": f"no control path {self.path}"}, "application/json")

    def aws(self, raw):
        state = self.server.state
        target = self.headers.get("X-Amz-Target", "")
        operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else target
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = raw.decode("utf-8", "replace")
        entry, fault = state.arrive(operation, body)
        if fault:
            return self.fault(fault, entry)
        try:
            check_auth(self.headers, self.path, raw, state.args.region, state.args.secret_key)
            if operation not in MODEL.operation_names:
                raise framework("service", "UnknownOperationException", f"unknown operation {target!r}")
            if not isinstance(body, dict):
                raise framework("service", "SerializationException", "the body is not a JSON object")
            model = MODEL.operation_model(operation)
            validate_request(model, body)
            if operation not in HANDLERS:
                return self.forward(raw, entry)
            with state.lock:
                result, outcome = HANDLERS[operation](state.store, body)
                result = json.loads(json.dumps(result))  # a snapshot, outside the store
            problems = model_problems(result, model.output_shape)
            if problems:
                raise modelled("InternalServerError", "ssm test endpoint bug: its own "
                               f"{operation} response breaks the model: "
                               + "; ".join(t for _, t in problems))
            self.send(200, result)
            state.settle(entry, outcome, 200)
        except Exception as e:  # noqa: BLE001 - every failure is answered and logged
            if not isinstance(e, ApiError):
                LOG.exception("%s: endpoint failure", operation)
                e = modelled("InternalServerError", f"ssm test endpoint failure: {e!r}")
            LOG.info("%s -> %s %s", operation, e.status, e.body)
            self.send(e.status, e.body)
            state.settle(entry, e.outcome, e.status, str(e))

    def forward(self, raw, entry):
        moto = self.server.state.args.moto_url
        if not moto:
            raise framework("service", "UnknownOperationException", f"{entry['operation']} is not served here "
                            "and no --moto-url was given")
        url = urllib.parse.urlsplit(moto)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        skip = {"host", "content-length", "connection", "transfer-encoding", "expect"}
        conn.request("POST", "/", body=raw, headers={k: v for k, v in self.headers.items() if k.lower() not in skip})
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        self.send(answer.status, data, answer.getheader("Content-Type", JSON_TYPE))
        self.server.state.settle(entry, "forwarded", answer.status)

    def fault(self, kind, entry):
        state = self.server.state
        LOG.info("%s: injected fault %s", entry["operation"], kind)
        if kind == "http500":
            self.send(500, {"__type": "InternalServerError", "Message": "injected fault: internal error"})
            return state.settle(entry, kind, 500)
        if kind == "throttle":
            self.send(400, {"__type": "com.amazon.coral.availability#ThrottlingException", "message": "Rate exceeded"})
            return state.settle(entry, kind, 400)
        state.settle(entry, kind, None)
        self.close_connection = True
        if kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.connection.close()
            return
        while True:  # hang: until the client closes its end
            readable, _, _ = select.select([self.connection], [], [], 1.0)
            if readable:
                try:
                    if not self.connection.recv(65536):
                        return
                except OSError:
                    return


def make_tls_context(directory):
    """A private CA (written to ``directory/ca.pem``) and a server certificate for loopback signed
    by it; returns the server's SSLContext."""
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid_from, valid_to = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("ec2-harden test CA"))
        .issuer_name(name("ec2-harden test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("ssm.local-endpoint"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    os.makedirs(directory, exist_ok=True)
    pem = serialization.Encoding.PEM
    with open(os.path.join(directory, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(os.path.join(directory, "server.pem"), "wb") as f:
        f.write(leaf.public_bytes(pem))
    with open(os.open(os.path.join(directory, "server.key"), os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
        f.write(
            key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(directory, "server.pem"), os.path.join(directory, "server.key"))
    return context


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--moto-url", help="where operations not served here are forwarded")
    parser.add_argument("--secret-key", help="verify SigV4 signatures with this secret access key")
    parser.add_argument("--region", default="us-east-1", help="the region requests must be scoped to")
    parser.add_argument("--tls-dir", help="serve HTTPS; the CA to trust is written to DIR/ca.pem")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="ssm-endpoint: %(message)s")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(args)
    scheme = "http"
    if args.tls_dir:
        # The handshake runs in the handler's thread (not in accept), so a client that refuses the
        # certificate or stalls cannot hold up the others.
        context = make_tls_context(args.tls_dir)
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        scheme = "https"
    print(f"listening {scheme}://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
