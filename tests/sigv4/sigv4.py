"""SigV4 with botocore, not cutoff's code: the oracle behind the local function URL
(tests/support/function_url.rs), and a second, independent signer for the tests' raw
requests. Uses botocore from the project's .venv (installed by `make tools`).

    python sigv4.py verify < request.json   ->  {"match": true|false, "why": "..."}
    python sigv4.py sign   < request.json   ->  {"headers": [[name, value], ...]}

verify: {"method", "url", "headers": [[name, value], ...], "body_hex" (the body's
bytes, hex), "secret_key", "region", "service"}. Reads the Authorization header (AWS4-HMAC-SHA256 Credential=
<key>/<date>/<region>/<service>/aws4_request, SignedHeaders=..., Signature=...) and
X-Amz-Date, recomputes the signature over exactly the signed headers with
botocore's SigV4Auth for the given region and service, at the request's own
X-Amz-Date, and compares. The freshness of the date, the key and the token are the
caller's checks (the front end's), not this script's.

sign: {"method", "url", "headers", "body", "access_key", "secret_key", "token"
(or null), "region", "service", "time" ("YYYYMMDDTHHMMSSZ", or null for now)}:
the headers botocore adds (X-Amz-Date, X-Amz-Security-Token, Authorization).
"""

import datetime
import hmac
import json
import sys

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"


def header_values(headers, name):
    return [v for k, v in headers if k.lower() == name]


def parse_authorization(value):
    if not value.startswith(ALGORITHM + " "):
        raise ValueError(f"not {ALGORITHM}")
    fields = {}
    for part in value[len(ALGORITHM) + 1:].split(","):
        key, sep, val = part.strip().partition("=")
        if not sep or key in fields:
            raise ValueError(f"malformed component {part.strip()!r}")
        fields[key] = val
    missing = {"Credential", "SignedHeaders", "Signature"} - fields.keys()
    if missing:
        raise ValueError(f"missing {sorted(missing)}")
    return fields


def verify(req):
    auth = header_values(req["headers"], "authorization")
    if len(auth) != 1:
        return {"match": False, "why": f"{len(auth)} Authorization headers"}
    try:
        fields = parse_authorization(auth[0])
    except ValueError as e:
        return {"match": False, "why": f"Authorization: {e}"}
    dates = header_values(req["headers"], "x-amz-date")
    if len(dates) != 1:
        return {"match": False, "why": f"{len(dates)} X-Amz-Date headers"}
    credential = fields["Credential"].split("/")
    if len(credential) != 5:
        return {"match": False, "why": "Credential is not key/date/region/service/aws4_request"}
    signed = fields["SignedHeaders"].split(";")
    if signed != sorted(set(signed)) or any(h != h.lower() for h in signed):
        return {"match": False, "why": "SignedHeaders is not sorted, unique, lower case"}
    headers = [(k, v) for k, v in req["headers"] if k.lower() in signed]
    absent = sorted(set(signed) - {k.lower() for k, _ in headers})
    if absent:
        return {"match": False, "why": f"signed headers not in the request: {absent}"}
    request = AWSRequest(method=req["method"], url=req["url"], data=bytes.fromhex(req["body_hex"]))
    for name, value in headers:
        request.headers[name] = value  # HTTPHeaders appends: repeated headers stay repeated
    request.context["timestamp"] = dates[0]
    signer = SigV4Auth(Credentials(credential[0], req["secret_key"]), req["service"], req["region"])
    canonical = signer.canonical_request(request)
    if signer.signed_headers(signer.headers_to_sign(request)) != fields["SignedHeaders"]:
        return {"match": False, "why": "botocore would sign other headers than SignedHeaders"}
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    match = hmac.compare_digest(expected, fields["Signature"])
    return {"match": match, "why": "" if match else "the signature does not match"}


def sign(req):
    if req.get("time"):
        fixed = datetime.datetime.strptime(req["time"], "%Y%m%dT%H%M%SZ")
        botocore.auth.get_current_datetime = lambda *args, **kwargs: fixed
    request = AWSRequest(method=req["method"], url=req["url"], data=req["body"].encode("utf-8"))
    for name, value in req["headers"]:
        request.headers[name] = value
    credentials = Credentials(req["access_key"], req["secret_key"], req.get("token"))
    SigV4Auth(credentials, req["service"], req["region"]).add_auth(request)
    added = ["X-Amz-Date", "X-Amz-Security-Token", "Authorization"]
    return {"headers": [[k, request.headers[k]] for k in added if k in request.headers]}


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    action = {"verify": verify, "sign": sign}.get(mode)
    if action is None:
        sys.exit("usage: sigv4.py verify|sign < request.json")
    json.dump(action(json.load(sys.stdin)), sys.stdout)
