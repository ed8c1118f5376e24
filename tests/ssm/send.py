#!/usr/bin/env python3
"""Raw awsJson1_1 requests to an SSM endpoint, signed with botocore's SigV4 signer, for the tests.

The AWS CLI and SDKs validate some of the model on the client side; this sends exactly what the
test asks for, so the tests can prove the server rejects it too. Reads a JSON list of requests on
stdin and prints a JSON list of results (one line) on stdout:

  request: {"operation": "PutInventory", "body": {...} | "raw": "text",
            "sign": true, "secret_key": "...", "region": "...", "service": "ssm",
            "headers": {"Name": "value"}, "timeout": 30}
  result:  {"status": 400, "body": {...} | "text"}  or  {"error": "timeout" | "reset" | "closed" | "..."}

Usage: python tests/ssm/send.py --url URL [--access-key K] [--secret-key S] [--region R] < requests
"""

import argparse
import http.client
import json
import socket
import sys
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def send(url, defaults, req):
    raw = req["raw"].encode() if "raw" in req else json.dumps(req.get("body", {})).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1",
               "X-Amz-Target": f"AmazonSSM.{req['operation']}"}
    headers.update(req.get("headers", {}))
    aws = AWSRequest(method="POST", url=url + "/", data=raw, headers=headers)
    if req.get("sign", True):
        credentials = Credentials(defaults.access_key, req.get("secret_key", defaults.secret_key))
        SigV4Auth(credentials, req.get("service", "ssm"), req.get("region", defaults.region)).add_auth(aws)
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=req.get("timeout", 30))
    try:
        conn.request("POST", "/", body=raw, headers=dict(aws.headers.items()))
        answer = conn.getresponse()
        data = answer.read().decode("utf-8", "replace")
    except socket.timeout:
        return {"error": "timeout"}
    except ConnectionResetError:
        return {"error": "reset"}
    except http.client.RemoteDisconnected:
        return {"error": "closed"}
    except OSError as e:
        return {"error": repr(e)}
    finally:
        conn.close()
    try:
        return {"status": answer.status, "body": json.loads(data)}
    except ValueError:
        return {"status": answer.status, "body": data}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--access-key", default="AKIDSSMTESTENDPOINT")
    parser.add_argument("--secret-key", default="ssm-test-endpoint-secret")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    results = [send(args.url.rstrip("/"), args, req) for req in json.load(sys.stdin)]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
