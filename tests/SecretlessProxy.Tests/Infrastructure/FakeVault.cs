using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text;
using System.Text.Json.Nodes;
using WireMock;
using WireMock.Logging;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;
using WireMock.Types;
using WireMock.Util;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// WireMock as HashiCorp Vault: login on an auth mount, a KV v2 secret, a dynamic secrets path,
/// lease renewal and revocation, with Vault's response shapes. Every client token, password and
/// KV value it hands out is distinct and remembered, so tests can tell which one a request used
/// and scan everything the proxy emitted for all of them.
/// </summary>
public sealed class FakeVault : IDisposable
{
    private const int Normal = 10;
    private const int Override = 1;

    private readonly string _marker = Guid.NewGuid().ToString("N")[..10];
    private readonly ConcurrentQueue<string> _clientTokens = new();
    private readonly ConcurrentQueue<string> _passwords = new();
    private readonly ConcurrentQueue<string> _usernames = new();
    private readonly ConcurrentQueue<string> _leaseIds = new();
    private readonly Guid _loginMapping = Guid.NewGuid();
    private readonly Guid _readMapping = Guid.NewGuid();
    private readonly Guid _renewMapping = Guid.NewGuid();
    private readonly Guid _revokeMapping = Guid.NewGuid();
    private readonly ConcurrentDictionary<string, DatabaseLease> _databaseLeases = new();
    private readonly ConcurrentQueue<string> _revokedLeases = new();
    private readonly ConcurrentQueue<string> _expiredLeases = new();
    private readonly ConcurrentQueue<(string LeaseId, int Granted)> _renewedLeases = new();
    private readonly SemaphoreSlim _expiring = new(1, 1);
    private int _count;

    /// <param name="certificate">Serve HTTPS with this certificate (for 127.0.0.1) instead of HTTP.</param>
    public FakeVault(X509Certificate2? certificate = null)
    {
        Server = certificate is null ? WireMockFactory.Start() : StartHttps(certificate);
        Address = (certificate is null ? "http" : "https") + "://127.0.0.1:" + Server.Ports[0];
        Revocations();
    }

    public WireMockServer Server { get; }

    public string Address { get; }

    public IReadOnlyList<string> ClientTokens => _clientTokens.ToArray();

    public IReadOnlyList<string> Passwords => _passwords.ToArray();

    public IReadOnlyList<string> Usernames => _usernames.ToArray();

    public IReadOnlyList<string> LeaseIds => _leaseIds.ToArray();

    /// <summary>Every value Vault handed out that the proxy must never emit (the lease ids are not secrets).</summary>
    public IEnumerable<string> Secrets() => _clientTokens.Concat(_passwords);

    /// <summary>Answers POST /v1/auth/{mount}/login with a new client token valid for <paramref name="ttl"/> seconds.</summary>
    public void Login(string mount = "jwt", int ttl = 3600)
    {
        Server.Given(Request.Create().WithPath("/v1/auth/" + mount + "/login").UsingPost())
            .WithGuid(_loginMapping)
            .AtPriority(Normal)
            .RespondWith(Json(_ =>
            {
                var token = "hvs." + _marker + "-token-" + Interlocked.Increment(ref _count);
                _clientTokens.Enqueue(token);
                return new JsonObject
                {
                    ["request_id"] = Guid.NewGuid().ToString(),
                    ["lease_id"] = string.Empty,
                    ["renewable"] = false,
                    ["lease_duration"] = 0,
                    ["data"] = null,
                    ["auth"] = new JsonObject
                    {
                        ["client_token"] = token,
                        ["accessor"] = Guid.NewGuid().ToString(),
                        ["policies"] = new JsonArray("default", "orders"),
                        ["lease_duration"] = ttl,
                        ["renewable"] = true,
                    },
                };
            }));
    }

    /// <summary>A KV v2 secret: GET /v1/{mount}/data/{path}.</summary>
    public void Kv(string mount, string path, JsonObject data)
    {
        var body = new JsonObject
        {
            ["request_id"] = Guid.NewGuid().ToString(),
            ["lease_id"] = string.Empty,
            ["renewable"] = false,
            ["lease_duration"] = 0,
            ["data"] = new JsonObject
            {
                ["data"] = data,
                ["metadata"] = new JsonObject { ["created_time"] = "2026-11-01T10:00:00Z", ["deletion_time"] = string.Empty, ["destroyed"] = false, ["version"] = 3 },
            },
        }.ToJsonString();
        Server.Given(Request.Create().WithPath("/v1/" + mount + "/data/" + path).UsingGet())
            .WithGuid(_readMapping)
            .AtPriority(Normal)
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json").WithBody(body));
    }

    /// <summary>A dynamic secrets path: each read issues a new user and password under a new lease.</summary>
    public void Dynamic(string path, int ttl = 600, bool renewable = true)
    {
        Server.Given(Request.Create().WithPath("/v1/" + path).UsingGet())
            .WithGuid(_readMapping)
            .AtPriority(Normal)
            .RespondWith(Json(_ =>
            {
                var n = Interlocked.Increment(ref _count);
                var lease = path + "/" + _marker + "-lease-" + n;
                var user = "v-jwt-orders-" + _marker + "-" + n;
                var password = "A1a-" + _marker + "-password-" + n;
                _leaseIds.Enqueue(lease);
                _usernames.Enqueue(user);
                _passwords.Enqueue(password);
                return new JsonObject
                {
                    ["request_id"] = Guid.NewGuid().ToString(),
                    ["lease_id"] = lease,
                    ["renewable"] = renewable,
                    ["lease_duration"] = ttl,
                    ["data"] = new JsonObject { ["username"] = user, ["password"] = password },
                };
            }));
    }

    /// <summary>Lease ids revoked through <c>PUT /v1/sys/leases/revoke</c> (database engine leases only), in order.</summary>
    public IReadOnlyList<string> RevokedLeases => _revokedLeases.ToArray();

    /// <summary>Lease ids that ran out (their TTL passed without renewal) and whose user was dropped.</summary>
    public IReadOnlyList<string> ExpiredLeases => _expiredLeases.ToArray();

    /// <summary>Database engine renewals that succeeded: the lease and the seconds granted.</summary>
    public IReadOnlyList<(string LeaseId, int Granted)> RenewedLeases => _renewedLeases.ToArray();

    /// <summary>The user names of database engine leases still alive, by lease id.</summary>
    public IReadOnlyDictionary<string, string> LiveLeases => _databaseLeases.ToDictionary(p => p.Key, p => p.Value.Username);

    /// <summary>
    /// Vault's database secrets engine at <paramref name="path"/> (<c>database/creds/orders</c>) backed by
    /// a real server: each read creates a real user through <paramref name="plugin"/> under a new lease
    /// of <paramref name="ttl"/> seconds that renewals extend up to <paramref name="maxTtl"/> seconds after
    /// issue (Vault grants less than asked near the max TTL); <c>sys/leases/revoke</c> and expiry drop the
    /// user, as Vault's expiration manager does. Time is <paramref name="time"/>: the tests' clock is the
    /// proxy's, and leases whose TTL passed are expired on the next call to Vault or
    /// <see cref="ExpireDueLeasesAsync"/>. Requests without a token Vault issued are refused (403).
    /// <paramref name="whileAnswering"/> runs after a lease is issued or renewed and before the answer
    /// goes out: a test advances its clock there to stand for the answer's time on the network.
    /// </summary>
    public void DatabaseEngine(string path, VaultDatabasePlugin plugin, TimeProvider time, int ttl = 60, int maxTtl = 300, Action? whileAnswering = null)
    {
        Server.Given(Request.Create().WithPath("/v1/" + path).UsingGet())
            .WithGuid(_readMapping)
            .AtPriority(Normal)
            .RespondWith(Response.Create().WithCallback(async request =>
            {
                await ExpireDueLeasesAsync(plugin, time);
                if (!IssuedToken(request))
                {
                    return Reply(403, VaultError("permission denied"));
                }

                var n = Interlocked.Increment(ref _count);
                // Vault's names are v-{auth}-{role}-{random}-{time}, cut to the server's limit (32 for MySQL).
                var user = "v-jwt-orders-" + _marker[..6] + "-" + n;
                var password = "A1a-" + _marker + "-pw-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6));
                var lease = path + "/" + _marker + "-lease-" + n;
                _passwords.Enqueue(password);
                try
                {
                    await plugin.CreateUser(user, password);
                }
                catch (Exception)
                {
                    // Vault answers a failed creation statement with 500 and the plugin's text; the text here is fixed.
                    return Reply(500, VaultError("1 error occurred: failed to create user with " + plugin.Name));
                }

                var now = time.GetUtcNow();
                _databaseLeases[lease] = new DatabaseLease(user, now + TimeSpan.FromSeconds(ttl), now + TimeSpan.FromSeconds(maxTtl), ttl);
                _leaseIds.Enqueue(lease);
                _usernames.Enqueue(user);
                whileAnswering?.Invoke();
                return Reply(200, new JsonObject
                {
                    ["request_id"] = Guid.NewGuid().ToString(),
                    ["lease_id"] = lease,
                    ["renewable"] = true,
                    ["lease_duration"] = ttl,
                    ["data"] = new JsonObject { ["username"] = user, ["password"] = password },
                    ["wrap_info"] = null,
                    ["warnings"] = null,
                    ["auth"] = null,
                });
            }));

        Server.Given(Request.Create().WithPath("/v1/sys/leases/renew").UsingPut())
            .WithGuid(_renewMapping)
            .AtPriority(Normal)
            .RespondWith(Response.Create().WithCallback(async request =>
            {
                await ExpireDueLeasesAsync(plugin, time);
                if (!IssuedToken(request))
                {
                    return Reply(403, VaultError("permission denied"));
                }

                var body = JsonNode.Parse(request.Body!)!;
                var id = body["lease_id"]?.GetValue<string>() ?? string.Empty;
                if (!_databaseLeases.TryGetValue(id, out var lease))
                {
                    return Reply(400, VaultError("lease not found or lease is not renewable"));
                }

                // Vault: the new TTL is the increment asked (the role's TTL without one), capped at the max TTL.
                var now = time.GetUtcNow();
                var asked = body["increment"]?.GetValue<int>() is { } increment and > 0 ? increment : lease.Ttl;
                var granted = (int)Math.Min(asked, Math.Floor((lease.MaxExpiresAt - now).TotalSeconds));
                if (granted <= 0)
                {
                    return Reply(400, VaultError("lease is past its max TTL"));
                }

                _databaseLeases[id] = lease with { ExpiresAt = now + TimeSpan.FromSeconds(granted) };
                _renewedLeases.Enqueue((id, granted));
                whileAnswering?.Invoke();
                return Reply(200, new JsonObject
                {
                    ["request_id"] = Guid.NewGuid().ToString(),
                    ["lease_id"] = id,
                    ["renewable"] = true,
                    ["lease_duration"] = granted,
                    ["data"] = null,
                    ["warnings"] = granted < asked ? new JsonArray("TTL of \"" + asked + "s\" exceeded the effective max_ttl of \"" + granted + "s\"; TTL value is capped accordingly") : null,
                });
            }));

        Server.Given(Request.Create().WithPath("/v1/sys/leases/revoke").UsingPut())
            .WithGuid(_revokeMapping)
            .AtPriority(Normal)
            .RespondWith(Response.Create().WithCallback(async request =>
            {
                await ExpireDueLeasesAsync(plugin, time);
                if (!IssuedToken(request))
                {
                    return Reply(403, VaultError("permission denied"));
                }

                var id = JsonNode.Parse(request.Body!)!["lease_id"]?.GetValue<string>() ?? string.Empty;
                if (_databaseLeases.TryRemove(id, out var lease))
                {
                    try
                    {
                        await plugin.DropUser(lease.Username);
                    }
                    catch (Exception)
                    {
                        _databaseLeases[id] = lease;
                        return Reply(500, VaultError("failed to revoke lease: " + plugin.Name + " revocation failed"));
                    }

                    _revokedLeases.Enqueue(id);
                }

                // Vault answers 204 for a lease it revoked and for one that is already gone.
                return Reply(204, null);
            }));
    }

    /// <summary>Drops the user of every database engine lease whose TTL has passed, as Vault's expiration manager does.</summary>
    public async Task ExpireDueLeasesAsync(VaultDatabasePlugin plugin, TimeProvider time)
    {
        await _expiring.WaitAsync();
        try
        {
            var now = time.GetUtcNow();
            foreach (var (id, lease) in _databaseLeases.ToArray())
            {
                if (lease.ExpiresAt <= now && _databaseLeases.TryRemove(id, out _))
                {
                    await plugin.DropUser(lease.Username);
                    _expiredLeases.Enqueue(id);
                }
            }
        }
        finally
        {
            _expiring.Release();
        }
    }

    /// <summary>Every path answers 200 with <paramref name="body"/> as <paramref name="contentType"/>: a gateway's page, a truncated answer.</summary>
    public void AnswerGarbage(string path, string body, string contentType = "text/html") =>
        Server.Given(Request.Create().WithPath(path).UsingAnyMethod())
            .AtPriority(Override)
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", contentType).WithBody(body));

    private bool IssuedToken(IRequestMessage request) =>
        request.Headers?.FirstOrDefault(h => h.Key.Equals("X-Vault-Token", StringComparison.OrdinalIgnoreCase)).Value?.FirstOrDefault() is { } token && _clientTokens.Contains(token);

    private static JsonObject VaultError(string message) => new() { ["errors"] = new JsonArray(message) };

    private static ResponseMessage Reply(int status, JsonObject? body) => new()
    {
        StatusCode = status,
        Headers = new Dictionary<string, WireMockList<string>> { ["Content-Type"] = new("application/json") },
        BodyData = body is null ? null : new BodyData { BodyAsString = body.ToJsonString(), DetectedBodyType = BodyType.String, Encoding = Encoding.UTF8 },
    };

    /// <summary>PUT /v1/sys/leases/renew grants <paramref name="ttl"/> seconds (Vault grants less than asked near the max TTL).</summary>
    public void Renewals(int ttl) =>
        Server.Given(Request.Create().WithPath("/v1/sys/leases/renew").UsingPut())
            .WithGuid(_renewMapping)
            .AtPriority(Normal)
            .RespondWith(Json(request => new JsonObject
            {
                ["request_id"] = Guid.NewGuid().ToString(),
                ["lease_id"] = JsonNode.Parse(request.Body!)!["lease_id"]!.GetValue<string>(),
                ["renewable"] = true,
                ["lease_duration"] = ttl,
                ["data"] = null,
            }));

    public void RefuseRenewals(int status = 400) =>
        Server.Given(Request.Create().WithPath("/v1/sys/leases/renew").UsingPut())
            .WithGuid(_renewMapping)
            .AtPriority(Normal)
            .RespondWith(Error(status, "lease not found or lease is not renewable"));

    /// <summary>PUT /v1/sys/leases/revoke answers 204, as Vault does.</summary>
    public void Revocations() =>
        Server.Given(Request.Create().WithPath("/v1/sys/leases/revoke").UsingPut())
            .WithGuid(_revokeMapping)
            .AtPriority(Normal)
            .RespondWith(Response.Create().WithStatusCode(204));

    /// <summary>Any request carrying <paramref name="token"/> is answered 403, as for a revoked or expired token.</summary>
    public void DenyToken(string token) =>
        Server.Given(Request.Create().WithHeader("X-Vault-Token", token))
            .AtPriority(Override)
            .RespondWith(Error(403, "permission denied"));

    /// <summary>Every path answers <paramref name="status"/> with Vault's error shape; the text may echo input, as Vault's can.</summary>
    public void FailEverything(int status, string message) =>
        Server.Given(Request.Create().UsingAnyMethod())
            .AtPriority(Override)
            .RespondWith(Error(status, message));

    public void Fail(string path, int status, string message) =>
        Server.Given(Request.Create().WithPath(path).UsingAnyMethod())
            .AtPriority(Override)
            .RespondWith(Error(status, message));

    public IReadOnlyList<ILogEntry> Requests(string path) =>
        Server.LogEntries.Where(e => e.RequestMessage.Path == path).ToArray();

    public IReadOnlyList<ILogEntry> Logins(string mount = "jwt") => Requests("/v1/auth/" + mount + "/login");

    /// <summary>The X-Vault-Token the request carried, or null.</summary>
    public static string? TokenOf(ILogEntry entry) =>
        entry.RequestMessage.Headers!.FirstOrDefault(h => h.Key.Equals("X-Vault-Token", StringComparison.OrdinalIgnoreCase)).Value?.Single();

    public static JsonElement BodyOf(ILogEntry entry) => JsonDocument.Parse(entry.RequestMessage.Body!).RootElement.Clone();

    private static IResponseBuilder Json(Func<WireMock.IRequestMessage, JsonObject> body) =>
        Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json").WithBody(request => body(request).ToJsonString());

    private static IResponseBuilder Error(int status, string message) =>
        Response.Create().WithStatusCode(status).WithHeader("Content-Type", "application/json")
            .WithBody(new JsonObject { ["errors"] = new JsonArray(message) }.ToJsonString());

    private static WireMockServer StartHttps(X509Certificate2 certificate)
    {
        // By file: WireMock logs its settings as JSON, and an in-memory certificate's EC key breaks that.
        var pfx = Path.Combine(Path.GetTempPath(), "fake-vault-" + Guid.NewGuid().ToString("N") + ".pfx");
        File.WriteAllBytes(pfx, certificate.Export(X509ContentType.Pfx, "fake-vault"));
        try
        {
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    return WireMockServer.Start(new WireMockServerSettings
                    {
                        Urls = ["https://127.0.0.1:" + WireMockFactory.FreePort()],
                        CertificateSettings = new WireMockCertificateSettings { X509CertificateFilePath = pfx, X509CertificatePassword = "fake-vault" },
                    });
                }
                catch (Exception) when (attempt < 5)
                {
                    // Another test took the port between probing and binding; try another.
                }
            }
        }
        finally
        {
            // Kestrel has loaded the certificate once the server started.
            File.Delete(pfx);
        }
    }

    public void Dispose()
    {
        Server.Dispose();
        _expiring.Dispose();
    }

    /// <summary>A live database engine lease: its user, when it ends, and the latest a renewal can take it.</summary>
    private sealed record DatabaseLease(string Username, DateTimeOffset ExpiresAt, DateTimeOffset MaxExpiresAt, int Ttl);
}
