#!/usr/bin/env python3
"""Time to revoke, measured (bench/run.sh revoke): how long after an operator acts does the proxy
stop (or change) what it sends?

  1. policy removed by a config file swap, the Kubernetes ConfigMap `..data` symlink pattern, until
     the first refused request on a kept-alive connection (and back: until the first allowed one);
  2. POST /credentials/NAME/revoke until a request carries a new token: whether the very next
     request does, and the time from the revoke's answer to it;
  3. POST /credentials/NAME/revoke of a Vault dynamic credential: until Vault has revoked the lease
     (the old user is dead), until the admin answer, until a request carries the new lease's user;
     and whether the old user is refused afterwards. Vault is a Vault-shaped HTTP fake in this
     script (jwt login, a database-style dynamic path, sys/leases/renew and /revoke): the Vault
     binary is not available here. The upstream stands in for the database: it accepts only the
     users of leases Vault has not revoked;
  4. the workload identity token (the projected token file, ..data swap): a token that reaches its
     exp until the first 503; the file replaced with an expired token until the first 503; a fresh
     token after a refusal until the first 200.

An app-side client sends GET requests back to back on one kept-alive connection (http.client), an
upstream answers with a digest of the Authorization header it got, and a token endpoint hands out a new token per
fetch. Parts 3 and 4 run against a second proxy (with Identity configured). Prints a markdown
section on stdout; progress on stderr.
Usage: bench/revoke.py PROXY_BINARY [TRIALS]    (python3 standard library only)
"""
import base64
import hashlib
import http.client
import http.server
import json
import os
import random
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
        # Head and body in one write: two small writes meet Nagle's algorithm and the client's
        # delayed ACK, which adds ~40 ms per answer that is the fake's, not the proxy's.
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()


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


def start_proxy(config_path, admin_port, log_name, what):
    """Starts the proxy on config_path and waits for its /readyz; exits with its log when it never gets ready."""
    log_path = os.path.join(work, log_name)
    process = subprocess.Popen([proxy_bin, "run", "--config", config_path], stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise SystemExit(what + " did not become ready: " + open(log_path).read())


def get(app, path):
    """One GET on the app's kept-alive connection: (status, body)."""
    app.request("GET", path)
    response = app.getresponse()
    return response.status, response.read().decode()


def until(app, path, predicate, since, clock=time.perf_counter, limit=10.0):
    """Requests back to back on the kept-alive connection until one satisfies predicate; seconds since `since`."""
    while True:
        status, body = get(app, path)
        now = clock()
        if predicate(status, body):
            return now - since
        if now - since > limit:
            raise SystemExit("no change within %.0f s (last %d %s)" % (limit, status, body[:80]))


publish(True)
os.symlink("..data/config.json", os.path.join(mount, "config.json"))
proxy = start_proxy(os.path.join(mount, "config.json"), admin, "proxy.log", "proxy")
try:
    app = http.client.HTTPConnection("127.0.0.1", listener, timeout=10)


    assert get(app, "/v1/orders")[0] == 200
    refuse, restore = [], []
    for t in range(trials):
        swapped = publish(False)
        refuse.append(until(app, "/v1/orders", lambda s, _: s == 403, swapped))
        swapped = publish(True)
        restore.append(until(app, "/v1/orders", lambda s, _: s == 200, swapped))
        say("swap %d: refused after %.1f ms, allowed again after %.1f ms" % (t + 1, refuse[-1] * 1000, restore[-1] * 1000))

    next_carries_new, revoke_times = 0, []
    admin_client = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
    for t in range(trials):
        _, before = get(app, "/v1/orders")
        admin_client.request("POST", "/credentials/api-token/revoke", headers={"Authorization": "Bearer revoke-bench-admin", "Content-Length": "0"})
        answer = admin_client.getresponse()
        answer.read()
        answered = time.perf_counter()
        assert answer.status in (200, 202, 204), answer.status
        _, first = get(app, "/v1/orders")
        if first != before:
            next_carries_new += 1
        revoke_times.append(until(app, "/v1/orders", lambda s, b: s == 200 and b != before, answered))
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
finally:
    proxy.terminate()
    proxy.wait(timeout=30)

# ---- Parts 3 and 4: a Vault lease, and the workload identity token -------------------------------

vault_state = {"tokens": set(), "leases": {}, "n": 0, "revoked_at": {}, "lock": threading.Lock()}


class FakeVault(Quiet):
    """Vault's API shapes: POST auth/jwt/login, GET database/creds/orders (a new user per lease),
    PUT sys/leases/renew and sys/leases/revoke (the lease's user dies at once, as Vault's database
    engine drops it). Answers 403 to a request without a token it issued."""

    def body(self):
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")

    def authorised(self):
        return self.headers.get("X-Vault-Token") in vault_state["tokens"]

    def do_POST(self):
        self.body()
        if self.path != "/v1/auth/jwt/login":
            return self.reply(404, json.dumps({"errors": []}), "application/json")
        with vault_state["lock"]:
            vault_state["n"] += 1
            token = "hvs.bench-%d" % vault_state["n"]
            vault_state["tokens"].add(token)
        self.reply(200, json.dumps({"auth": {"client_token": token, "lease_duration": 3600, "renewable": True}}), "application/json")

    def do_GET(self):
        if self.path != "/v1/database/creds/orders" or not self.authorised():
            return self.reply(403, json.dumps({"errors": ["permission denied"]}), "application/json")
        with vault_state["lock"]:
            vault_state["n"] += 1
            n = vault_state["n"]
            lease = "database/creds/orders/bench-%d" % n
            user, password = "v-jwt-orders-%d" % n, "A1a-bench-password-%d" % n
            vault_state["leases"][lease] = (user, password, True)
        self.reply(200, json.dumps({"lease_id": lease, "lease_duration": 600, "renewable": True,
                                    "data": {"username": user, "password": password}}), "application/json")

    def do_PUT(self):
        body = self.body()
        if not self.authorised():
            return self.reply(403, json.dumps({"errors": ["permission denied"]}), "application/json")
        lease = body.get("lease_id", "")
        if self.path == "/v1/sys/leases/revoke":
            with vault_state["lock"]:
                if lease in vault_state["leases"]:
                    user, password, _ = vault_state["leases"][lease]
                    vault_state["leases"][lease] = (user, password, False)
                    vault_state["revoked_at"][user] = time.perf_counter()
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()  # one write: no body
        elif self.path == "/v1/sys/leases/renew" and vault_state["leases"].get(lease, (0, 0, False))[2]:
            self.reply(200, json.dumps({"lease_id": lease, "lease_duration": body.get("increment", 600), "renewable": True}), "application/json")
        else:
            self.reply(400, json.dumps({"errors": ["lease not found or lease is not renewable"]}), "application/json")


class Database(Quiet):
    """Stands in for the database: a request's Basic user and password must be a live lease's."""

    def do_GET(self):
        if self.path.startswith("/static/"):
            return self.reply(200, "static")
        header = self.headers.get("Authorization", "")
        try:
            user, password = base64.b64decode(header[len("Basic "):]).decode().split(":", 1)
        except ValueError:
            return self.reply(401, "no credentials")
        live = any(u == user and p == password and alive for u, p, alive in list(vault_state["leases"].values()))
        self.reply(200 if live else 401, user if live else "dead user")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def workload_token(exp):
    """A projected-token-shaped JWT; the proxy is configured without Issuer/JwksUrl, so it reads the
    claims (exp included) without verifying the signature, as it does for a token Vault verifies."""
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench"}).encode())
    claims = b64url(json.dumps({"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:shop:orders",
                                "aud": ["vault"], "iat": int(time.time()) - 1, "exp": exp}).encode())
    return header + "." + claims + "." + b64url(os.urandom(64))


# The projected volume's layout: token -> ..data/token, ..data -> ..<version>, swapped atomically.
tokens_dir = os.path.join(work, "tokens")
os.makedirs(tokens_dir)
token_version = {"n": 0}


def publish_token(exp):
    token_version["n"] += 1
    folder = os.path.join(tokens_dir, "..t%d" % token_version["n"])
    os.makedirs(folder)
    with open(os.path.join(folder, "token"), "w") as f:
        f.write(workload_token(exp))
    tmp = os.path.join(tokens_dir, "..data_tmp")
    os.symlink("..t%d" % token_version["n"], tmp)
    swapped = time.perf_counter()
    os.rename(tmp, os.path.join(tokens_dir, "..data"))
    return swapped


publish_token(int(time.time()) + 3600)
os.symlink("..data/token", os.path.join(tokens_dir, "token"))
vault = serve(FakeVault)
database = serve(Database)
listener2, admin2 = free_port(), free_port()
with open(os.path.join(work, "static-key"), "w") as f:
    f.write("revoke-bench-static-key")
os.chmod(os.path.join(work, "static-key"), 0o600)
config2 = {
    "Logging": {"LogLevel": {"Default": "Warning"}},
    "SecretlessProxy": {
        "Admin": {"Url": "http://127.0.0.1:%d" % admin2, "TokenFile": os.path.join(work, "admin-token")},
        # ClockSkew 0: a token is refused from its exp, so the measurement is the proxy's, not the tolerance's.
        "Identity": {"Source": "TokenFile", "Path": os.path.join(tokens_dir, "token"), "ClockSkew": "00:00:00"},
        "Listeners": {"api": {"Mode": "Route", "Url": "http://127.0.0.1:%d" % listener2, "Upstream": "http://127.0.0.1:%d" % database.server_port}},
        "Credentials": {
            "db-login": {"Source": "Vault", "Address": "http://127.0.0.1:%d" % vault.server_port, "AllowLoopbackSquatting": True,
                         "AuthMethod": "Jwt", "Role": "orders", "DynamicPath": "database/creds/orders", "RetryDelay": "00:00:00"},
            "static": {"Source": "File", "Path": os.path.join(work, "static-key")},
        },
        "Policies": {
            "db": {"Match": {"Hosts": ["127.0.0.1"], "Ports": [database.server_port], "PathPrefix": "/db/", "Methods": ["GET"]},
                   "Credential": "db-login", "Inject": {"Basic": True}},
            "static": {"Match": {"Hosts": ["127.0.0.1"], "Ports": [database.server_port], "PathPrefix": "/static/", "Methods": ["GET"]},
                       "Credential": "static", "Inject": {"Header": "X-Api-Key", "Format": "{token}"}},
        },
    },
}
config2_path = os.path.join(work, "config2.json")
with open(config2_path, "w") as f:
    json.dump(config2, f)
proxy = start_proxy(config2_path, admin2, "proxy2.log", "second proxy")
try:
    app = http.client.HTTPConnection("127.0.0.1", listener2, timeout=10)


    status, body = get(app, "/db/orders")
    assert status == 200, (status, body)

    # 3. Vault lease revoke through the admin endpoint.
    to_vault, to_answer, to_new, next_new, old_refused = [], [], [], 0, 0
    admin_client = http.client.HTTPConnection("127.0.0.1", admin2, timeout=10)
    for t in range(trials):
        _, old_user = get(app, "/db/orders")
        old_password = next(p for u, p, _ in vault_state["leases"].values() if u == old_user)
        sent = time.perf_counter()
        admin_client.request("POST", "/credentials/db-login/revoke", headers={"Authorization": "Bearer revoke-bench-admin", "Content-Length": "0"})
        answer = admin_client.getresponse()
        answer.read()
        answered = time.perf_counter()
        assert answer.status == 200, answer.status
        status, first = get(app, "/db/orders")
        if status == 200 and first != old_user:
            next_new += 1
        to_new.append(until(app, "/db/orders", lambda s, b: s == 200 and b != old_user, sent))
        to_answer.append(answered - sent)
        to_vault.append(vault_state["revoked_at"][old_user] - sent)
        # The old user, presented directly to the database stand-in, is refused.
        direct = http.client.HTTPConnection("127.0.0.1", database.server_port, timeout=10)
        direct.request("GET", "/db/orders", headers={"Authorization": "Basic " + base64.b64encode((old_user + ":" + old_password).encode()).decode()})
        if direct.getresponse().status == 401:
            old_refused += 1
        direct.close()
        say("vault revoke %d: lease revoked at Vault after %.1f ms, answered after %.1f ms, new user after %.1f ms" % (t + 1, to_vault[-1] * 1000, to_answer[-1] * 1000, to_new[-1] * 1000))

    # 4. The workload identity token.
    natural, replaced, fresh = [], [], []
    assert get(app, "/static/x")[0] == 200
    for t in range(trials):
        # A token that reaches its exp: from the exp instant (wall clock, whole seconds as in the JWT) to the first 503.
        time.sleep(random.uniform(0, 1))
        exp = int(time.time()) + 3
        swapped = publish_token(exp)
        waited = until(app, "/static/x", lambda s, _: s == 200, swapped)
        if t > 0:
            # After the previous trial's refusal; the first trial starts from a valid token.
            fresh.append(waited)
        natural.append(until(app, "/static/x", lambda s, _: s == 503, exp, clock=time.time))
        # After the refusal, a fresh token: from the ..data swap to the first 200. The proxy looks at
        # the file every 100 ms; a random pause puts the swap at a random point of that cycle
        # (right after a look is its worst case, which back-to-back steps would always hit).
        time.sleep(random.uniform(0, 0.1))
        swapped = publish_token(int(time.time()) + 3600)
        fresh.append(until(app, "/static/x", lambda s, _: s == 200, swapped))
        # The file replaced with an already expired token: from the swap to the first 503.
        time.sleep(random.uniform(0, 0.1))
        swapped = publish_token(int(time.time()) - 60)
        replaced.append(until(app, "/static/x", lambda s, _: s == 503, swapped))
        say("identity %d: expired -> 503 after %.1f ms, replaced by an expired token -> 503 after %.1f ms, fresh -> 200 after %.1f ms"
            % (t + 1, natural[-1] * 1000, replaced[-1] * 1000, fresh[-1] * 1000))
    publish_token(int(time.time()) + 3600)

    ms = lambda v: "%.1f" % (v * 1000)
    row = lambda label, values, goal: print("| %s | %s | %s | %s | %s |" % (label, ms(statistics.median(values)), ms(percentile(values, 99)), ms(max(values)), goal))
    print()
    print("Vault lease (admin revoke of a Vault dynamic credential; Vault is a Vault-shaped Python fake, the real binary is not available here):")
    print()
    print("| action | p50 ms | p99 ms | max ms | goal |")
    print("|---|---|---|---|---|")
    row("POST /credentials/NAME/revoke sent, until Vault has revoked the lease (the old user is dead)", to_vault, "")
    row("POST /credentials/NAME/revoke sent, until its answer", to_answer, "")
    row("POST /credentials/NAME/revoke sent, until a request carries the new lease's user", to_new, "the very next request")
    print()
    print("The very next request after the answer carried a new lease's user in %d of %d trials; the old user, presented directly, was refused in %d of %d." % (next_new, trials, old_refused, trials))
    print()
    print("Workload identity token (projected token file, `..data` swap at a random point of the proxy's 100 ms look at the file, `ClockSkew` 0; a policy with a File credential):")
    print()
    print("| action | p50 ms | p99 ms | max ms | goal |")
    print("|---|---|---|---|---|")
    row("token reaches its `exp`, until the first 503", natural, "the very next request")
    row("file replaced by an expired token, until the first 503", replaced, "p99 < 200 ms (as for a file swap)")
    row("file replaced by a fresh token after a refusal, until the first 200 (%d samples)" % len(fresh), fresh, "")
finally:
    proxy.terminate()
    proxy.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
