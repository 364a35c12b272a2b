#!/usr/bin/env python3
"""Time to revoke, measured (bench/run.sh revoke): how long after an operator acts does the proxy
stop (or change) what it sends?

  1. policy removed by a config file swap, the Kubernetes ConfigMap `..data` symlink pattern, until
     the first refused request on a kept-alive connection (and back: until the first allowed one);
  2. POST /credentials/NAME/revoke until a request carries a new token: whether the very next
     request does, and the time from the revoke's answer to it.

An app-side client sends GET requests back to back on one kept-alive connection (http.client), an
upstream answers with a digest of the Authorization header it got, and a token endpoint hands out a new token per
fetch. Prints a markdown section on stdout; progress on stderr.
Usage: bench/revoke.py PROXY_BINARY [TRIALS]    (python3 standard library only)
"""
import hashlib
import http.client
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

proxy_bin = sys.argv[1]
trials = int(sys.argv[2]) if len(sys.argv) > 2 else 20


def say(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="text/plain"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Upstream(Quiet):
    # A digest of the Authorization header it got: the proxy masks a credential reflected in a
    # response, so the header itself would come back as asterisks.
    def do_GET(self):
        self.reply(200, hashlib.sha256(self.headers.get("Authorization", "none").encode()).hexdigest()[:16])


issued = {"n": 0}


class TokenEndpoint(Quiet):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        issued["n"] += 1
        self.reply(200, json.dumps({"access_token": "tok-%d" % issued["n"], "token_type": "Bearer", "expires_in": 3600}), "application/json")


def serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


work = tempfile.mkdtemp(prefix="secretless-revoke.")
upstream = serve(Upstream)
tokens = serve(TokenEndpoint)
listener, admin = free_port(), free_port()
with open(os.path.join(work, "admin-token"), "w") as f:
    f.write("revoke-bench-admin")
with open(os.path.join(work, "client-secret"), "w") as f:
    f.write("revoke-bench-client-secret")
os.chmod(os.path.join(work, "admin-token"), 0o600)
os.chmod(os.path.join(work, "client-secret"), 0o600)


def config(with_policy):
    policies = {}
    if with_policy:
        policies["api"] = {
            "Match": {"Hosts": ["127.0.0.1"], "Ports": [upstream.server_port], "PathPrefix": "/v1/", "Methods": ["GET"]},
            "Credential": "api-token",
            "Inject": {"Header": "Authorization", "Format": "Bearer {token}"},
        }
    return {
        "Logging": {"LogLevel": {"Default": "Warning"}},
        "SecretlessProxy": {
            "Admin": {"Url": "http://127.0.0.1:%d" % admin, "TokenFile": os.path.join(work, "admin-token")},
            "Listeners": {"api": {"Mode": "Route", "Url": "http://127.0.0.1:%d" % listener, "Upstream": "http://127.0.0.1:%d" % upstream.server_port}},
            "Credentials": {"api-token": {
                "Source": "OAuth2ClientCredentials", "TokenUrl": "http://127.0.0.1:%d/token" % tokens.server_port,
                "ClientId": "bench", "ClientSecretFile": os.path.join(work, "client-secret"), "AllowLoopbackSquatting": True}},
            "Policies": policies,
        },
    }


# The ConfigMap layout: config.json -> ..data/config.json, ..data -> ..<version>; an update writes a
# new version folder and renames a new ..data link over the old one, atomically.
mount = os.path.join(work, "config")
os.makedirs(mount)
version = {"n": 0}


def publish(with_policy):
    version["n"] += 1
    folder = os.path.join(mount, "..v%d" % version["n"])
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config(with_policy), f)
    tmp = os.path.join(mount, "..data_tmp")
    os.symlink("..v%d" % version["n"], tmp)
    swapped = time.perf_counter()
    os.rename(tmp, os.path.join(mount, "..data"))
    return swapped


publish(True)
os.symlink("..data/config.json", os.path.join(mount, "config.json"))
proxy = subprocess.Popen([proxy_bin, "run", "--config", os.path.join(mount, "config.json")], stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "proxy.log"), "w"))
try:
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", admin, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)
    else:
        raise SystemExit("proxy did not become ready: " + open(os.path.join(work, "proxy.log")).read())

    app = http.client.HTTPConnection("127.0.0.1", listener, timeout=10)

    def get():
        app.request("GET", "/v1/orders")
        response = app.getresponse()
        return response.status, response.read().decode()

    def until(predicate, since, limit=10.0):
        """Requests back to back on the kept-alive connection until one satisfies predicate; seconds since `since`."""
        while True:
            status, body = get()
            now = time.perf_counter()
            if predicate(status, body):
                return now - since
            if now - since > limit:
                raise SystemExit("no change within %.0f s (last %d %s)" % (limit, status, body[:80]))

    assert get()[0] == 200
    refuse, restore = [], []
    for t in range(trials):
        swapped = publish(False)
        refuse.append(until(lambda s, _: s == 403, swapped))
        swapped = publish(True)
        restore.append(until(lambda s, _: s == 200, swapped))
        say("swap %d: refused after %.1f ms, allowed again after %.1f ms" % (t + 1, refuse[-1] * 1000, restore[-1] * 1000))

    next_carries_new, revoke_times = 0, []
    admin_client = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
    for t in range(trials):
        _, before = get()
        admin_client.request("POST", "/credentials/api-token/revoke", headers={"Authorization": "Bearer revoke-bench-admin", "Content-Length": "0"})
        answer = admin_client.getresponse()
        answer.read()
        answered = time.perf_counter()
        assert answer.status in (200, 202, 204), answer.status
        _, first = get()
        if first != before:
            next_carries_new += 1
        revoke_times.append(until(lambda s, b: s == 200 and b != before, answered))
        say("revoke %d: %s -> %s, next request carried the new token: %s" % (t + 1, before, first, first != before))

    ms = lambda v: "%.1f" % (v * 1000)
    print()
    print("### Time to revoke (%s, %d trials each)" % (time.strftime("%Y-%m-%d", time.gmtime()), trials))
    print()
    print("One app connection kept alive, requests back to back; times from the operator's action to the first request that shows it.")
    print()
    print("| action | p50 ms | p99 ms | max ms | goal |")
    print("|---|---|---|---|---|")
    print("| ConfigMap swap removing the policy, until the first 403 | %s | %s | %s | p99 < 200 ms |" % (ms(statistics.median(refuse)), ms(percentile(refuse, 99)), ms(max(refuse)), ))
    print("| ConfigMap swap restoring it, until the first 200 | %s | %s | %s | |" % (ms(statistics.median(restore)), ms(percentile(restore, 99)), ms(max(restore))))
    print("| POST /credentials/NAME/revoke answered, until a request carries a new token | %s | %s | %s | the very next request |" % (ms(statistics.median(revoke_times)), ms(percentile(revoke_times, 99)), ms(max(revoke_times))))
    print()
    print("The very next request after the revoke's answer carried a new token in %d of %d trials." % (next_carries_new, trials))
    print("Not measured here: a Vault lease revoke, and a workload identity token that expires (both need a Vault and a token issuer in the bench; the test suite covers their behaviour).")
finally:
    proxy.terminate()
    proxy.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
