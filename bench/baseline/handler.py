"""Python/boto3 baseline of cutoff's revocation path, for benchmarks.

What a careful engineer would write as "the usual alternative" to cutoff: one Lambda
that triages a GuardDuty finding (EventBridge event, or SQS records carrying such
events) with cutoff's default rules and, for a role at severity >= 7, denies every
session issued before now with the console's `AWSRevokeOlderSessions` inline policy.
It makes the same IAM/STS calls as cutoff's revoker: AssumeRole (cached per account),
GetRole, GetRolePolicy, PutRolePolicy (IAM enforces the inline quota) and a read-back
GetRolePolicy. Roles only: IAM users, the managed-policy fallback and
session-scoped denies are out of scope (see README.md).
"""

import calendar
import datetime as dt
import json
import logging
import math
import os
import re
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

POLICY_NAME = "AWSRevokeOlderSessions"
SID = "RevokeOlderSessions"
ROLE_INLINE_BUDGET = 10_240  # characters, whitespace not counted, all inline policies
REVOKE_SEVERITY, ALERT_SEVERITY = 7.0, 4.0
NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}\Z")
ACCOUNT = re.compile(r"[0-9]{12}\Z")
STATEMENT_KEYS = {"Sid", "Effect", "Action", "Resource", "Condition"}


def _env(name, default=None):
    # The plain names, or cutoff's CUTOFF_* ones so a harness can configure both alike.
    return os.environ.get(name) or os.environ.get("CUTOFF_" + name) or default


MEMBER_ROLE_NAME = _env("MEMBER_ROLE_NAME", "cutoff-member")
EXTERNAL_ID = _env("EXTERNAL_ID")
PROTECTED = ["cutoff-*", MEMBER_ROLE_NAME] + [
    p.strip() for p in (_env("PROTECTED") or "").split(",") if p.strip()
]

log = logging.getLogger("baseline")
log.setLevel(logging.INFO)

# Clients at init, reused across invocations. Six attempts in all and short timeouts,
# as cutoff; the counter hooks every HTTP attempt (retries included), as cutoff counts.
CONFIG = Config(connect_timeout=3, read_timeout=10,
                retries={"total_max_attempts": 6, "mode": "standard"})
SESSION = boto3.session.Session(region_name=os.environ.get("AWS_REGION"))
_calls = 0


def _count(**_):
    global _calls
    _calls += 1


def _client(service, **credentials):
    client = SESSION.client(service, config=CONFIG, **credentials)
    client.meta.events.register("before-send", _count)
    return client


STS = _client("sts")
IAM = _client("iam")
OUTCOME_BUS = _env("OUTCOME_BUS")
EVENTS = _client("events") if OUTCOME_BUS else None
HOME_ACCOUNT = _env("HOME_ACCOUNT") or STS.get_caller_identity()["Account"]
PARTITION = SESSION.get_partition_for_region(SESSION.region_name)
_members = {}  # account -> (IAM client on the member role, monotonic refresh time)


def _iam_for(account, request_id):
    """IAM in `account`: our own client at home, else the member role's, cached until
    five minutes before its credentials expire."""
    if account == HOME_ACCOUNT:
        return IAM
    cached = _members.get(account)
    if cached and time.monotonic() < cached[1]:
        return cached[0]
    extra = {"ExternalId": EXTERNAL_ID} if EXTERNAL_ID else {}
    creds = STS.assume_role(
        RoleArn=f"arn:{PARTITION}:iam::{account}:role/{MEMBER_ROLE_NAME}",
        RoleSessionName=re.sub(r"[^A-Za-z0-9_+=,.@-]", "-", f"baseline-{request_id}")[:64],
        DurationSeconds=3600,
        **extra,
    )["Credentials"]
    client = _client(
        "iam",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    lifetime = creds["Expiration"].timestamp() - time.time()
    _members[account] = (client, time.monotonic() + lifetime - 300)
    return client


# --- triage (cutoff's default GuardDuty rules) -----------------------------------------


def _flag(value):
    return value is True or (isinstance(value, str) and value.lower() == "true")


def triage(event):
    """(decision, account, role name or None, reason) for one EventBridge event."""
    d = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(d, dict) or event.get("source") != "aws.guardduty" or not d.get("id"):
        return "ignore", None, None, "not a GuardDuty finding"
    service = d.get("service") or {}
    if _flag((service.get("additionalInfo") or {}).get("sample")):
        return "ignore", None, None, "sample finding"
    if _flag(service.get("archived")):
        return "ignore", None, None, "archived finding"
    severity = d.get("severity")
    if isinstance(severity, bool) or not isinstance(severity, (int, float)):
        return "ignore", None, None, "no numeric severity"
    account = d.get("accountId") or ""  # the member, never the envelope's admin account
    key = (d.get("resource") or {}).get("accessKeyDetails")
    if not key:
        profile = ((d.get("resource") or {}).get("instanceDetails") or {}).get("iamInstanceProfile")
        if not profile:
            return "ignore", account, None, "no IAM principal"
        kind, name = "instance_profile", str(profile.get("arn", "")).rsplit("/", 1)[-1]
    else:
        kind = {"AssumedRole": "role", "Role": "role", "IAMUser": "user", "Root": "root",
                "FederatedUser": "federated_user"}.get(key.get("userType"), "unknown")
        name = key.get("userName") or ("root" if kind == "root" else "")
        if not ACCOUNT.match(account) or not NAME.match(name):
            return "ignore", account, None, "invalid account or principal name"
        if kind == "role" and name.startswith(("AWSServiceRoleFor", "AWSReservedSSO_")):
            kind = "unmodifiable_role"
    if severity < ALERT_SEVERITY:
        return "ignore", account, name, f"severity {severity} below {ALERT_SEVERITY}"
    if kind != "role":
        return "alert", account, name, f"{kind}: alert only in this baseline"
    lowered = name.lower()
    if any(lowered.startswith(p[:-1].lower()) if p.endswith("*") else lowered == p.lower()
           for p in PROTECTED):
        return "alert", account, name, "protected role"
    if severity < REVOKE_SEVERITY:
        return "alert", account, name, f"severity {severity} below {REVOKE_SEVERITY}"
    return "revoke", account, name, f"severity {severity} >= {REVOKE_SEVERITY}"


# --- the deny document --------------------------------------------------------------


def _epoch_up(text):
    """Whole seconds since the epoch of an RFC 3339 time, rounded up; None if unreadable."""
    try:
        t = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    if t.tzinfo is None:
        return None
    return calendar.timegm(t.utctimetuple()) + (1 if t.microsecond else 0)


def _iso(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _is_star(value):
    return value == "*" or value == ["*"]


def _cutoff_of(st):
    """The cutoff of a role-wide revocation statement (cutoff's or the console's shape)."""
    if not isinstance(st, dict) or not set(st) <= STATEMENT_KEYS:
        return None
    if not isinstance(st.get("Sid", ""), str) or st.get("Effect") != "Deny":
        return None
    if not (_is_star(st.get("Action")) and _is_star(st.get("Resource"))):
        return None
    cond = st.get("Condition")
    if not isinstance(cond, dict) or list(cond) != ["DateLessThan"]:
        return None
    block = cond["DateLessThan"]
    if not isinstance(block, dict) or len(block) != 1:
        return None
    (key, value), = block.items()
    if key.lower() != "aws:tokenissuetime":
        return None
    value = value[0] if isinstance(value, list) and len(value) == 1 else value
    return _epoch_up(value)


def _statements(doc):
    st = doc.get("Statement", [])
    return [st] if isinstance(st, dict) else st


def _role_wide_cutoff(doc):
    return max((c for c in map(_cutoff_of, _statements(doc or {})) if c is not None), default=None)


def _merge(existing, cutoff):
    """`existing` with every role-wide deny collapsed into one at `cutoff`, in place of the
    first; foreign statements kept verbatim and in order."""
    if existing is None:
        existing = {"Version": "2012-10-17", "Statement": []}
    statements = _statements(existing)
    sid_taken = any(_cutoff_of(s) is None and isinstance(s, dict)
                    and str(s.get("Sid", "")).lower() == SID.lower() for s in statements)
    ours = {} if sid_taken else {"Sid": SID}
    ours.update({"Effect": "Deny", "Action": "*", "Resource": "*",
                 "Condition": {"DateLessThan": {"aws:TokenIssueTime": _iso(cutoff)}}})
    out, placed = [], False
    for s in statements:
        if _cutoff_of(s) is None:
            out.append(s)
        elif not placed:
            out.append(ours)
            placed = True
    if not placed:
        out.append(ours)
    return {**existing, "Statement": out}


def _dumps(doc):
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _size(text):
    return sum(1 for c in text if c not in " \t\n\r\f\v")


def _read_policy(iam, role, name=POLICY_NAME):
    try:
        doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    except iam.exceptions.NoSuchEntityException:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("Statement", []), (list, dict)):
        raise ValueError(f"{name} on {role} is not a policy this code can read; not overwriting it")
    return doc


# --- revocation ---------------------------------------------------------------------


def revoke(account, role, last_seen, request_id):
    global _calls
    _calls = 0
    out = {"status": "failed", "account": account, "role": role, "cutoff": None,
           "previous_cutoff": None, "api_calls": 0, "error": None}
    try:
        iam = _iam_for(account, request_id)
        path = iam.get_role(RoleName=role)["Role"].get("Path", "/")
        if path.startswith(("/aws-service-role/", "/aws-reserved/sso.amazonaws.com/")):
            out["status"] = "unmodifiable"
            return out
        existing = _read_policy(iam, role)
        previous = _role_wide_cutoff(existing)
        out["previous_cutoff"] = None if previous is None else _iso(previous)
        new = math.ceil(time.time() + 1)  # now + 1 s, rounded up, taken after the read
        covered = last_seen is not None and previous is not None and last_seen < previous
        if covered or (previous is not None and previous >= new):
            out.update(status="already_revoked", cutoff=_iso(previous))
            return out
        text = _dumps(_merge(existing, new))
        # The quota is IAM's to enforce, as cutoff leaves it to IAM: PutRolePolicy answers
        # LimitExceeded when the role's inline policies would exceed 10,240 characters.
        # Only a document that cannot fit on its own is refused before writing.
        if _size(text) > ROLE_INLINE_BUDGET:
            out["error"] = {"kind": "quota", "message": f"the deny needs {_size(text)} of "
                            f"{ROLE_INLINE_BUDGET} characters"}
            return out
        try:
            iam.put_role_policy(RoleName=role, PolicyName=POLICY_NAME, PolicyDocument=text)
        except iam.exceptions.LimitExceededException as e:
            # cutoff falls back to a managed policy here; this baseline has none.
            out["error"] = {"kind": "quota", "message": str(e)}
            return out
        # Read back until IAM shows the cutoff, as cutoff's revoker does before it says
        # `applied` (up to five reads, growing waits): same work, same call count.
        for attempt in range(1, 6):
            if (_role_wide_cutoff(_read_policy(iam, role)) or 0) >= new:
                out.update(status="applied", cutoff=_iso(new))
                return out
            if attempt < 5:
                time.sleep(0.25 * attempt)
        out["error"] = {"kind": "unverified", "message": "five read-backs did not show the deny"}
        return out
    except (ClientError, BotoCoreError, ValueError) as e:
        kind = (e.response["Error"].get("Code") if isinstance(e, ClientError)
                else "transient" if isinstance(e, BotoCoreError) else "unreadable_policy")
        out["error"] = {"kind": kind, "message": str(e)}
        return out
    finally:
        out["api_calls"] = _calls


def handle_event(event, request_id, revoked):
    decision, account, role, reason = triage(event)
    detail = event.get("detail") if isinstance(event, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    if decision != "revoke":
        out = {"status": decision.replace("ignore", "ignored").replace("alert", "alerted"),
               "account": account, "role": role, "cutoff": None, "previous_cutoff": None,
               "api_calls": 0, "error": None, "detail": reason}
    else:
        out = revoke(account, role, _last_seen(detail), request_id)
        revoked.append(out)
    log.info(json.dumps({"message": "outcome", "finding": detail.get("id"), **out}))
    return out


def _last_seen(detail):
    """When the finding's activity was last seen (epoch seconds), if it says."""
    try:
        return dt.datetime.fromisoformat(detail["service"]["eventLastSeen"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def publish(outcomes):
    """Revocation outcomes to the outcome bus, as cutoff's revoker sends them (one
    PutEvents per ten); only when OUTCOME_BUS is set. Not counted in api_calls."""
    for i in range(0, len(outcomes) if EVENTS else 0, 10):
        EVENTS.put_events(Entries=[
            {"Source": "cutoff", "DetailType": "Revocation Outcome", "Detail": json.dumps(o),
             "EventBusName": OUTCOME_BUS} for o in outcomes[i:i + 10]])


def lambda_handler(event, context):
    request_id = getattr(context, "aws_request_id", "local")
    records = event.get("Records") if isinstance(event, dict) else None
    revoked = []
    if records is None:
        out = handle_event(event, request_id, revoked)
        publish(revoked)
        return out
    outcomes, failures = [], []
    for record in records:
        try:
            outcome = handle_event(json.loads(record["body"]), request_id, revoked)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            outcome = {"status": "failed", "error": {"kind": "malformed", "message": str(e)}}
        outcomes.append(outcome)
        if outcome["status"] == "failed":
            failures.append({"itemIdentifier": record.get("messageId")})
    publish(revoked)  # a failure here fails the invocation: the whole batch is retried
    return {"outcomes": outcomes, "batchItemFailures": failures}
