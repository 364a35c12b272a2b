using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// A PostgreSQL server on 127.0.0.1 that asks for the authentication a test chooses, as a hostile
/// or misconfigured server would: SCRAM-SHA-256 with any iteration count, MD5 or the cleartext
/// password. It knows the role's password, so it checks a SCRAM proof and signs its final message
/// as a real server does, then completes the session start (ParameterStatus, BackendKeyData,
/// ReadyForQuery). <see cref="Events"/> records what the proxy sent it: whether a proof, an MD5
/// response or a password ever reached the wire is the thing tests assert.
/// </summary>
public sealed class FakePostgresServer : IAsyncDisposable
{
    public const string ProofValid = "scram-proof-valid";
    public const string ProofInvalid = "scram-proof-invalid";
    public const string Md5Response = "md5-response";
    public const string CleartextPassword = "cleartext-password";
    public const string ClosedBeforeAnswer = "closed-before-answer";
    public const string Ended = "ended";

    private const int SslRequestCode = 80877103;
    private readonly TcpListener _listener;
    private readonly X509Certificate2? _certificate;
    private readonly string _password;
    private readonly string _method;
    private readonly int _iterations;

    // The role's stored salt: the same on every login, as with a real server's SCRAM verifier.
    private readonly byte[] _salt = RandomNumberGenerator.GetBytes(16);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    private FakePostgresServer(string password, string method, int iterations, X509Certificate2? certificate)
    {
        _password = password;
        _method = method;
        _iterations = iterations;
        _certificate = certificate;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>What happened on each connection, in order: "startup user=...", then one of the constants above.</summary>
    public ConcurrentQueue<string> Events { get; } = new();

    /// <summary>A server asking for SCRAM-SHA-256 (no -PLUS) with <paramref name="iterations"/> and one salt for the role.</summary>
    public static FakePostgresServer Scram(string password, int iterations, X509Certificate2? certificate = null) => new(password, "scram", iterations, certificate);

    public static FakePostgresServer Md5(string password, X509Certificate2? certificate = null) => new(password, "md5", 0, certificate);

    public static FakePostgresServer Cleartext(string password, X509Certificate2? certificate = null) => new(password, "password", 0, certificate);

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        Stream stream = client.GetStream();
        try
        {
            var (code, payload) = await ReadStartupPacketAsync(stream);
            if (code == SslRequestCode)
            {
                if (_certificate is null)
                {
                    await stream.WriteAsync("N"u8.ToArray(), _stop.Token);
                }
                else
                {
                    await stream.WriteAsync("S"u8.ToArray(), _stop.Token);
                    var tls = new SslStream(stream);
                    await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificate }, _stop.Token);
                    stream = tls;
                }

                (code, payload) = await ReadStartupPacketAsync(stream);
            }

            var parameters = Encoding.UTF8.GetString(payload).Split('\0');
            var user = parameters.SkipWhile(p => p != "user").Skip(1).FirstOrDefault() ?? string.Empty;
            Events.Enqueue("startup user=" + user);
            var authenticated = _method switch
            {
                "scram" => await ScramAsync(stream),
                "md5" => await Md5Async(stream),
                _ => await CleartextAsync(stream),
            };
            if (!authenticated)
            {
                return;
            }

            await SendAsync(stream, 'R', Int32(0));
            foreach (var (name, value) in new[] { ("server_version", "15.0"), ("client_encoding", "UTF8"), ("server_encoding", "UTF8"), ("integer_datetimes", "on"), ("standard_conforming_strings", "on") })
            {
                await SendAsync(stream, 'S', [.. Encoding.UTF8.GetBytes(name), 0, .. Encoding.UTF8.GetBytes(value), 0]);
            }

            await SendAsync(stream, 'K', [.. Int32(4242), .. Int32(1717)]);
            await SendAsync(stream, 'Z', "I"u8.ToArray());
            // Hold the session until the other side closes it.
            var sink = new byte[256];
            while (await stream.ReadAsync(sink, _stop.Token) > 0)
            {
            }
        }
        catch (EndOfStreamException)
        {
            Events.Enqueue(ClosedBeforeAnswer);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException or System.Security.Authentication.AuthenticationException or ObjectDisposedException)
        {
        }
        finally
        {
            await stream.DisposeAsync();
            Events.Enqueue(Ended);
        }
    }

    /// <summary>Waits until <paramref name="count"/> connections have ended here, so what they recorded is final.</summary>
    public async Task WaitForEndedAsync(int count)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (Events.Count(e => e == Ended) < count)
        {
            await Task.Delay(20, timeout.Token);
        }
    }

    private async Task<bool> ScramAsync(Stream stream)
    {
        await SendAsync(stream, 'R', [.. Int32(10), .. "SCRAM-SHA-256"u8, 0, 0]);
        var initial = await ReadMessageAsync(stream, 'p');
        var mechanismEnd = Array.IndexOf(initial, (byte)0);
        var clientFirst = Encoding.UTF8.GetString(initial, mechanismEnd + 5, initial.Length - mechanismEnd - 5);
        var clientFirstBare = clientFirst[(clientFirst.IndexOf(",,", StringComparison.Ordinal) + 2)..];
        var clientNonce = clientFirstBare.Split(',').Single(a => a.StartsWith("r=", StringComparison.Ordinal))[2..];

        var salt = _salt;
        var serverFirst = "r=" + clientNonce + Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)) + ",s=" + Convert.ToBase64String(salt) + ",i=" + _iterations;
        await SendAsync(stream, 'R', [.. Int32(11), .. Encoding.UTF8.GetBytes(serverFirst)]);

        var clientFinal = Encoding.UTF8.GetString(await ReadMessageAsync(stream, 'p'));
        var proofStart = clientFinal.LastIndexOf(",p=", StringComparison.Ordinal);
        var withoutProof = clientFinal[..proofStart];
        var proof = Convert.FromBase64String(clientFinal[(proofStart + 3)..]);

        // RFC 5802 section 3, the server's side.
        var saltedPassword = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(_password), salt, _iterations, HashAlgorithmName.SHA256, 32);
        var authMessage = Encoding.UTF8.GetBytes(clientFirstBare + "," + serverFirst + "," + withoutProof);
        var storedKey = SHA256.HashData(HMACSHA256.HashData(saltedPassword, "Client Key"u8));
        var clientSignature = HMACSHA256.HashData(storedKey, authMessage);
        var clientKey = proof.Select((b, i) => (byte)(b ^ clientSignature[i])).ToArray();
        if (!SHA256.HashData(clientKey).AsSpan().SequenceEqual(storedKey))
        {
            Events.Enqueue(ProofInvalid);
            await SendErrorAsync(stream, "28P01", "password authentication failed");
            return false;
        }

        Events.Enqueue(ProofValid);
        var serverSignature = HMACSHA256.HashData(HMACSHA256.HashData(saltedPassword, "Server Key"u8), authMessage);
        await SendAsync(stream, 'R', [.. Int32(12), .. Encoding.UTF8.GetBytes("v=" + Convert.ToBase64String(serverSignature))]);
        return true;
    }

    private async Task<bool> Md5Async(Stream stream)
    {
        await SendAsync(stream, 'R', [.. Int32(5), .. RandomNumberGenerator.GetBytes(4)]);
        await ReadMessageAsync(stream, 'p');
        Events.Enqueue(Md5Response);
        return true;
    }

    private async Task<bool> CleartextAsync(Stream stream)
    {
        await SendAsync(stream, 'R', Int32(3));
        await ReadMessageAsync(stream, 'p');
        Events.Enqueue(CleartextPassword);
        return true;
    }

    private async Task<(int Code, byte[] Payload)> ReadStartupPacketAsync(Stream stream)
    {
        var header = new byte[8];
        await stream.ReadExactlyAsync(header, _stop.Token);
        var length = BinaryPrimitives.ReadInt32BigEndian(header);
        var payload = new byte[length - 8];
        await stream.ReadExactlyAsync(payload, _stop.Token);
        return (BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4)), payload);
    }

    private async Task<byte[]> ReadMessageAsync(Stream stream, char expectedType)
    {
        var header = new byte[5];
        await stream.ReadExactlyAsync(header, _stop.Token);
        if (header[0] != expectedType)
        {
            throw new IOException("expected message '" + expectedType + "', got '" + (char)header[0] + "'");
        }

        var payload = new byte[BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1)) - 4];
        await stream.ReadExactlyAsync(payload, _stop.Token);
        return payload;
    }

    private async Task SendErrorAsync(Stream stream, string sqlState, string message) =>
        await SendAsync(stream, 'E', [.. "SFATAL"u8, 0, (byte)'C', .. Encoding.UTF8.GetBytes(sqlState), 0, (byte)'M', .. Encoding.UTF8.GetBytes(message), 0, 0]);

    private async Task SendAsync(Stream stream, char type, byte[] payload)
    {
        var message = new byte[5 + payload.Length];
        message[0] = (byte)type;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), payload.Length + 4);
        payload.CopyTo(message, 5);
        await stream.WriteAsync(message, _stop.Token);
        await stream.FlushAsync(_stop.Token);
    }

    private static byte[] Int32(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(bytes, value);
        return bytes;
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
