using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using Xunit;
using SecretlessProxy.Core;
using SecretlessProxy.Injection;
using SecretlessProxy.Listeners;
using SecretlessProxy.Listeners.Database;
using SecretlessProxy.Listeners.Postgres;

namespace SecretlessProxy.Tests.Injection;

/// <summary>
/// The proxy's SCRAM login against a server scripted in memory that answers as an impostor would:
/// a final signature it cannot compute, no final message at all, or a nonce that is not an answer
/// to the proxy's. Each ends the login with the error the app will see, before any session is
/// handed over, without the password in it, and without remembering anything in the
/// salted-password cache. (Weakened methods and iteration counts: PostgresWeakExchangeTests.)
/// </summary>
public sealed class PostgresAuthenticatorTests : IAsyncLifetime
{
    private const string User = "orders_app";
    private readonly string _password = "pg-auth-" + Guid.NewGuid().ToString("N");
    private readonly byte[] _salt = RandomNumberGenerator.GetBytes(16);
    private readonly SaltedPasswordCache _cache = new();
    private readonly Pipe _toServer = new();
    private readonly Pipe _toProxy = new();

    // A login that waits for a server message the script never sends fails instead of hanging.
    private readonly CancellationTokenSource _bound = new(TimeSpan.FromSeconds(30));
    private readonly DuplexPipeStream _proxySide;
    private readonly Stream _serverIn;
    private readonly Stream _serverOut;

    public PostgresAuthenticatorTests()
    {
        _proxySide = new DuplexPipeStream(new DuplexPipe(_toProxy.Reader, _toServer.Writer));
        _serverIn = _toServer.Reader.AsStream();
        _serverOut = _toProxy.Writer.AsStream();
    }

    private Task<string> LoginAsync() =>
        PostgresAuthenticator.AuthenticateAsync(_proxySide, new PostgresBackendReader(_proxySide), User, _password, serverCertificate: null, DatabaseTlsMode.Disable, _cache, _bound.Token);

    /// <summary>Plays the server up to the client-final message; returns the client nonce it answered.</summary>
    private async Task<string> ServerUpToClientFinalAsync(Func<string, string>? serverNonce = null)
    {
        await SendAsync('R', [.. Int32(10), .. "SCRAM-SHA-256\0\0"u8]);
        var initial = await ReadMessageAsync('p');
        var mechanismEnd = Array.IndexOf(initial, (byte)0);
        Assert.Equal("SCRAM-SHA-256", Encoding.ASCII.GetString(initial, 0, mechanismEnd));
        var clientFirst = Encoding.ASCII.GetString(initial, mechanismEnd + 5, initial.Length - mechanismEnd - 5);
        Assert.StartsWith("n,,n=,r=", clientFirst, StringComparison.Ordinal);
        var clientNonce = clientFirst["n,,n=,r=".Length..];

        var nonce = serverNonce is null ? clientNonce + "server-part" : serverNonce(clientNonce);
        await SendAsync('R', [.. Int32(11), .. Encoding.ASCII.GetBytes("r=" + nonce + ",s=" + Convert.ToBase64String(_salt) + ",i=4096")]);
        return clientNonce;
    }

    [Fact]
    public async Task A_server_whose_final_signature_does_not_verify_is_refused_as_not_holding_the_verifier()
    {
        var login = LoginAsync();
        await ServerUpToClientFinalAsync();
        var clientFinal = Encoding.ASCII.GetString(await ReadMessageAsync('p'));
        Assert.Contains(",p=", clientFinal);

        // An impostor has the proof but not the verifier, so it cannot sign; it claims success anyway.
        await SendAsync('R', [.. Int32(12), .. Encoding.ASCII.GetBytes("v=" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)))]);
        await SendAsync('R', Int32(0));

        var ex = await Assert.ThrowsAsync<PostgresProtocolException>(() => login);
        Assert.Equal("28000", ex.SqlState);
        Assert.Equal("login-failed", AccessOutcomeNames.ToWireName(ex.Outcome));
        Assert.Equal("the database server's SCRAM signature did not verify: it does not hold this user's verifier", ex.Message);
        Assert.Null(_cache.TryGet(_password, _salt, 4096));
    }

    [Fact]
    public async Task A_server_that_skips_the_final_message_and_says_ok_is_refused()
    {
        var login = LoginAsync();
        await ServerUpToClientFinalAsync();
        await ReadMessageAsync('p');

        await SendAsync('R', Int32(0));

        var ex = await Assert.ThrowsAsync<PostgresProtocolException>(() => login);
        Assert.Equal("28000", ex.SqlState);
        Assert.Equal("the database server ended SCRAM authentication without proving its identity", ex.Message);
        Assert.Null(_cache.TryGet(_password, _salt, 4096));
    }

    [Fact]
    public async Task A_server_error_instead_of_a_signature_is_passed_on_without_the_password()
    {
        var login = LoginAsync();
        await ServerUpToClientFinalAsync();
        await ReadMessageAsync('p');

        await SendAsync('R', [.. Int32(12), .. "e=invalid-proof"u8]);

        var ex = await Assert.ThrowsAsync<PostgresProtocolException>(() => login);
        Assert.Equal("28000", ex.SqlState);
        Assert.Equal("SCRAM with the database server failed: invalid-proof", ex.Message);
        Assert.DoesNotContain(_password, ex.Message);
    }

    [Theory]
    [InlineData("foreign")]
    [InlineData("echo")]
    public async Task A_nonce_that_does_not_extend_the_proxys_gets_no_proof(string kind)
    {
        var login = LoginAsync();
        await ServerUpToClientFinalAsync(clientNonce => kind == "echo" ? clientNonce : "x" + clientNonce);

        var ex = await Assert.ThrowsAsync<PostgresProtocolException>(() => login);
        Assert.Equal("08P01", ex.SqlState);
        Assert.Equal("SCRAM with the database server failed: the server's SCRAM nonce does not extend the proxy's", ex.Message);
        // Nothing was sent after the client-first message: no proof to crack offline.
        _toServer.Writer.Complete();
        Assert.Equal(0, await _serverIn.ReadAsync(new byte[1]));
    }

    [Fact]
    public async Task A_second_SASL_start_is_a_protocol_violation()
    {
        var login = LoginAsync();
        await SendAsync('R', [.. Int32(10), .. "SCRAM-SHA-256\0\0"u8]);
        await ReadMessageAsync('p');

        await SendAsync('R', [.. Int32(10), .. "SCRAM-SHA-256\0\0"u8]);

        var ex = await Assert.ThrowsAsync<PostgresProtocolException>(() => login);
        Assert.Equal("08P01", ex.SqlState);
        Assert.Equal("the database server started SASL twice", ex.Message);
    }

    private async Task SendAsync(char type, byte[] payload)
    {
        await _serverOut.WriteAsync(PostgresWire.Message((byte)type, payload));
        await _serverOut.FlushAsync();
    }

    private async Task<byte[]> ReadMessageAsync(char expectedType)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var header = new byte[5];
        await _serverIn.ReadExactlyAsync(header, bound.Token);
        Assert.Equal(expectedType, (char)header[0]);
        var payload = new byte[BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1)) - 4];
        await _serverIn.ReadExactlyAsync(payload, bound.Token);
        return payload;
    }

    private static byte[] Int32(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(bytes, value);
        return bytes;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        _bound.Dispose();
        await _proxySide.DisposeAsync();
        await _serverIn.DisposeAsync();
        await _serverOut.DisposeAsync();
    }
}
