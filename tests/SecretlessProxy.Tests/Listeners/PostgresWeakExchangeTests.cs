using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Telemetry;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners;

/// <summary>
/// No weakened exchange with a database server the proxy cannot verify. Against a fake server that
/// asks for what an impostor would (SCRAM at one iteration, an MD5 response, the cleartext
/// password), behind Tls Require (any certificate) or Disable: the app gets a FATAL ErrorResponse
/// that names the reason, the server never receives a proof, hash or password, and a warning with
/// event id 400 is logged. A normal count (4096) proceeds, and a verified server (VerifyFull) may ask
/// for fewer; no server gets a count beyond the proxy's cap.
/// </summary>
public sealed class PostgresWeakExchangeTests : IDisposable
{
    private const string User = "orders_app";
    private readonly string _password = "pg-weak-exchange-" + Guid.NewGuid().ToString("N");
    private readonly TestConfig _config = new();
    private readonly TestPki _pki;

    public PostgresWeakExchangeTests()
    {
        _pki = new TestPki(_config.Directory);
    }

    public void Dispose()
    {
        _pki.Dispose();
        _config.Dispose();
    }

    /// <summary>A proxy whose Postgres listener "db" logs in to the fake server with Tls Mode <paramref name="tlsMode"/>.</summary>
    private async Task<ProxyHarness> StartProxyAsync(FakePostgresServer server, string tlsMode)
    {
        var tls = new JsonObject { ["Mode"] = tlsMode };
        if (tlsMode == "VerifyFull")
        {
            tls["CaFile"] = _pki.CaFile;
        }

        _config.PostgresListener("db", "localhost:" + server.Port, "db-login", tls)
            .Credential("db-login", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("db-password", _password), ["Username"] = User })
            .Policy("orders-db", new JsonObject
            {
                ["Match"] = TestConfig.Match(["localhost"], ports: [server.Port]),
                ["Inject"] = new JsonObject { ["DatabaseLogin"] = true },
            });
        var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_password);
        return proxy;
    }

    [Theory]
    [InlineData("Require", 1)]
    [InlineData("Require", 4095)]
    [InlineData("Disable", 1)]
    public async Task Scram_with_fewer_than_4096_iterations_from_an_unverified_server_is_refused_before_any_proof_is_sent(string tlsMode, int iterations)
    {
        await using var server = FakePostgresServer.Scram(_password, iterations, tlsMode == "Disable" ? null : _pki.IssueServer());
        await using var proxy = await StartProxyAsync(server, tlsMode);

        var answer = await LoginAsync(proxy);

        var error = AssertRefused(answer, "28000");
        Assert.Contains("asked for SCRAM with " + iterations + " iterations", error);
        Assert.Contains("refuses fewer than 4096 from a server it cannot verify", error);
        Assert.Contains(tlsMode == "Require" ? "its certificate is not verified (Tls Mode Require)" : "the connection has no TLS (Tls Mode Disable)", error);
        await server.WaitForEndedAsync(1);
        Assert.DoesNotContain(FakePostgresServer.ProofValid, server.Events);
        Assert.DoesNotContain(FakePostgresServer.ProofInvalid, server.Events);
        AssertWarned(proxy, "weak-exchange-refused");
        Assert.Equal("weak-exchange-refused", Assert.Single(proxy.Spans, s => s.DisplayName == "secretless.database.connection").GetTagItem("secretless.outcome"));
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Theory]
    [InlineData("Require")]
    [InlineData("Disable")]
    public async Task Scram_with_4096_iterations_from_an_unverified_server_proceeds(string tlsMode)
    {
        await using var server = FakePostgresServer.Scram(_password, 4096, tlsMode == "Disable" ? null : _pki.IssueServer());
        await using var proxy = await StartProxyAsync(server, tlsMode);

        // Twice: the second login uses the salted password cached after the first proved the server.
        foreach (var _ in new[] { 1, 2 })
        {
            var answer = await LoginAsync(proxy);

            Assert.Equal('R', answer[0].Type);
            Assert.Equal(0, BinaryPrimitives.ReadInt32BigEndian(answer[0].Payload));
            Assert.Equal('Z', answer[^1].Type);
        }

        Assert.Equal(2, server.Events.Count(e => e == FakePostgresServer.ProofValid));
        Assert.Equal("startup user=" + User, server.Events.First());
        Assert.DoesNotContain(proxy.Logs.Entries, e => e.EventId.Id == EventIds.DatabaseWeakAuthenticationRefused);
    }

    [Fact]
    public async Task A_verified_server_may_ask_for_fewer_iterations()
    {
        await using var server = FakePostgresServer.Scram(_password, 1, _pki.IssueServer());
        await using var proxy = await StartProxyAsync(server, "VerifyFull");

        var answer = await LoginAsync(proxy);

        Assert.Equal('Z', answer[^1].Type);
        Assert.Contains(FakePostgresServer.ProofValid, server.Events);
    }

    [Theory]
    [InlineData(1_000_001)]
    [InlineData(int.MaxValue)]
    public async Task An_absurd_iteration_count_is_refused_even_from_a_verified_server(int iterations)
    {
        await using var server = FakePostgresServer.Scram(_password, iterations, _pki.IssueServer());
        await using var proxy = await StartProxyAsync(server, "VerifyFull");

        var answer = await LoginAsync(proxy);

        var error = AssertRefused(answer, "28000");
        Assert.Contains("asked for SCRAM with " + iterations + " iterations; the proxy computes at most 1000000", error);
        await server.WaitForEndedAsync(1);
        Assert.DoesNotContain(FakePostgresServer.ProofValid, server.Events);
        Assert.DoesNotContain(FakePostgresServer.ProofInvalid, server.Events);
        AssertWarned(proxy, "excessive-work-refused");
    }

    [Theory]
    [InlineData("md5", "Disable", "asked for an MD5 response over a connection without TLS")]
    [InlineData("md5", "Require", "asked for an MD5 response, and its certificate is not verified")]
    [InlineData("password", "Disable", "asked for the password in cleartext over a connection without TLS")]
    [InlineData("password", "Require", "asked for the password in cleartext, and its certificate is not verified")]
    public async Task Md5_and_cleartext_from_an_unverified_server_are_refused_before_anything_is_sent(string method, string tlsMode, string reason)
    {
        var certificate = tlsMode == "Disable" ? null : _pki.IssueServer();
        await using var server = method == "md5" ? FakePostgresServer.Md5(_password, certificate) : FakePostgresServer.Cleartext(_password, certificate);
        await using var proxy = await StartProxyAsync(server, tlsMode);

        var answer = await LoginAsync(proxy);

        Assert.Contains(reason, AssertRefused(answer, "28000"));
        await server.WaitForEndedAsync(1);
        Assert.DoesNotContain(FakePostgresServer.Md5Response, server.Events);
        Assert.DoesNotContain(FakePostgresServer.CleartextPassword, server.Events);
        AssertWarned(proxy, "weak-exchange-refused");
        await proxy.AssertNoSecretEmittedAsync();
    }

    [Fact]
    public async Task A_verified_server_still_gets_md5()
    {
        await using var server = FakePostgresServer.Md5(_password, _pki.IssueServer());
        await using var proxy = await StartProxyAsync(server, "VerifyFull");

        var answer = await LoginAsync(proxy);

        Assert.Equal('Z', answer[^1].Type);
        Assert.Contains(FakePostgresServer.Md5Response, server.Events);
    }

    /// <summary>The app's side: a startup message without TLS, then every message up to ReadyForQuery or an ErrorResponse.</summary>
    internal static async Task<List<(char Type, byte[] Payload)>> LoginAsync(ProxyHarness proxy, string listener = "db")
    {
        using var client = new TcpClient();
        await client.ConnectAsync(proxy.App.GetListenerEndPoint(listener));
        var stream = client.GetStream();
        var parameters = Encoding.UTF8.GetBytes("user\0the-app\0database\0orders\0\0");
        var startup = new byte[8 + parameters.Length];
        BinaryPrimitives.WriteInt32BigEndian(startup, startup.Length);
        BinaryPrimitives.WriteInt32BigEndian(startup.AsSpan(4), 196608);
        parameters.CopyTo(startup, 8);
        await stream.WriteAsync(startup);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var messages = new List<(char, byte[])>();
        var header = new byte[5];
        while (true)
        {
            await stream.ReadExactlyAsync(header, timeout.Token);
            var payload = new byte[BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1)) - 4];
            await stream.ReadExactlyAsync(payload, timeout.Token);
            messages.Add(((char)header[0], payload));
            if (header[0] is (byte)'Z' or (byte)'E')
            {
                return messages;
            }
        }
    }

    /// <summary>Asserts the only answer is a FATAL ErrorResponse with <paramref name="sqlState"/>; returns its message.</summary>
    internal static string AssertRefused(List<(char Type, byte[] Payload)> answer, string sqlState)
    {
        var (type, payload) = Assert.Single(answer);
        Assert.Equal('E', type);
        var fields = Encoding.UTF8.GetString(payload).Split('\0', StringSplitOptions.RemoveEmptyEntries).ToDictionary(f => f[0], f => f[1..]);
        Assert.Equal("FATAL", fields['S']);
        Assert.Equal(sqlState, fields['C']);
        return fields['M'];
    }

    private static void AssertWarned(ProxyHarness proxy, string outcome) =>
        Assert.Contains(proxy.Logs.Entries, e => e.EventId.Id == EventIds.DatabaseWeakAuthenticationRefused &&
            e.Level == Microsoft.Extensions.Logging.LogLevel.Warning &&
            e.State.Any(kv => kv.Key == "Outcome" && (string?)kv.Value == outcome));
}
