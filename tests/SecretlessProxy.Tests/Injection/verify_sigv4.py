#!/usr/bin/python3
"""Recomputes the SigV4 signature of a request as an upstream received it, with botocore.

Independent of the proxy's signer: botocore (Debian python3-botocore) builds the canonical request
from the received method, target, signed headers and body, with the X-Amz-Date the request carries.

Input: a JSON file (argv[1]) with
  method, url (scheme://host + the raw request target), headers ([[name, value], ...] as received),
  body_b64, access_key, secret_key, token (or null), service, region.
Output: one line, "match" or "mismatch: <reason>", then the canonical request on mismatch.
Exit code 0 on match, 1 on mismatch.
"""
import base64
import hashlib
import json
import re
import sys

from botocore.auth import S3SigV4Auth, SigV4Auth, UNSIGNED_PAYLOAD
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.compat import HTTPHeaders


def fail(reason, canonical=None):
    print("mismatch: " + reason)
    if canonical is not None:
        print(canonical)
    sys.exit(1)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        case = json.load(f)

    received = {}
    for name, value in case["headers"]:
        received.setdefault(name.lower(), []).append(value)

    auth_header = received.get("authorization")
    if not auth_header or len(auth_header) != 1:
        fail("no single Authorization header")
    m = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
        r"SignedHeaders=([a-z0-9;\-]+), Signature=([0-9a-f]{64})",
        auth_header[0],
    )
    if not m:
        fail("Authorization is not a SigV4 header: " + auth_header[0][:40])
    access_key, date, region, service, signed_headers, signature = m.groups()
    if access_key != case["access_key"]:
        fail("signed with access key " + access_key)
    if region != case["region"] or service != case["service"]:
        fail("credential scope is " + region + "/" + service)

    amz_date = received.get("x-amz-date", [None])[0]
    if amz_date is None or not amz_date.startswith(date):
        fail("X-Amz-Date missing or not on the scope's date")

    signed = signed_headers.split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        fail("host and x-amz-date must be signed")
    if case.get("token"):
        if "x-amz-security-token" not in signed or received.get("x-amz-security-token") != [case["token"]]:
            fail("the session token is not sent and signed")

    body = base64.b64decode(case["body_b64"])
    content_sha = received.get("x-amz-content-sha256", [None])[0]
    if content_sha is not None and content_sha != UNSIGNED_PAYLOAD and content_sha != hashlib.sha256(body).hexdigest():
        fail("X-Amz-Content-Sha256 is not the SHA-256 of the body received")

    # Only the headers the request says it signed, with the values received (repeated lines
    # joined by a comma, as a service reads them).
    headers = HTTPHeaders()
    for name in signed:
        if name not in received:
            fail("signed header " + name + " was not received")
        headers[name] = ",".join(received[name])

    request = AWSRequest(method=case["method"], url=case["url"], headers=headers, data=body)
    request.context["timestamp"] = amz_date
    credentials = Credentials(case["access_key"], case["secret_key"], case.get("token"))
    signer_class = S3SigV4Auth if service == "s3" else SigV4Auth
    signer = signer_class(credentials, service, region)

    canonical = signer.canonical_request(request)
    if signer.signed_headers(signer.headers_to_sign(request)) != signed_headers:
        fail("botocore would sign other headers: " + signer.signed_headers(signer.headers_to_sign(request)), canonical)
    string_to_sign = signer.string_to_sign(request, canonical)
    expected = signer.signature(string_to_sign, request)
    if expected != signature:
        fail("signature differs", canonical)
    print("match")


if __name__ == "__main__":
    main()
