#!/usr/bin/python3
"""Prints the RDS IAM auth token botocore's generate_db_auth_token computes, at a pinned clock.

Usage: rds_auth_token.py HOST PORT USER REGION EPOCH_SECONDS, with the access key id, the secret
access key and the session token (empty for none) on stdin, one per line: secrets never go on a
command line. The clock botocore's SigV4 query signer reads (datetime.datetime.utcnow in
botocore.auth) is pinned to EPOCH_SECONDS, so the token is comparable byte for byte.
"""
import datetime
import os
import sys
import types

for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
    os.environ.pop(name, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
# botocore's own signer (botocore.auth.SigV4QueryAuth), whether or not awscrt is installed: the CRT
# one (which awscli pulls in) lists X-Amz-SignedHeaders before X-Amz-Expires, the AWS SDKs and the
# RDS documentation's example the other way round.
os.environ["BOTO_DISABLE_CRT"] = "true"
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

import botocore.auth  # noqa: E402
import botocore.session  # noqa: E402

host, port, user, region, epoch = sys.argv[1:6]
lines = sys.stdin.read().split("\n")
access_key, secret_key, session_token = lines[0], lines[1], lines[2] if len(lines) > 2 else ""
fixed = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc).replace(tzinfo=None)


class PinnedDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return fixed


pinned = types.SimpleNamespace(datetime=PinnedDatetime, timezone=datetime.timezone)
botocore.auth.datetime = pinned

client = botocore.session.get_session().create_client(
    "rds",
    region_name=region,
    aws_access_key_id=access_key,
    aws_secret_access_key=secret_key,
    aws_session_token=session_token or None,
)
sys.stdout.write(client.generate_db_auth_token(host, int(port), user, Region=region))
