using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using SecretlessProxy.Listeners.MySql;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Listeners.MySql;

/// <summary>
/// A PROTOCOL FAKE, not a server: MySQL 8's caching_sha2_password exchange as the MySQL protocol
/// documentation publishes it ("Caching_sha2_password information": fast authentication, then
/// complete authentication over TLS or with the RSA key), because a real MySQL 8 cannot run on this
/// machine. It greets with caching_sha2_password, accepts the SSL request (TLS from a
/// <see cref="TestPki"/> certificate), checks the scramble the way the server does (from the stored
/// SHA256(SHA256(password)) only), and answers fast_auth_success (0x03) when <see cref="CacheHit"/>
/// or perform_full_authentication (0x04) otherwise, then checks the cleartext or RSA-encrypted password.
/// It records the path each login took; it runs no SQL.
/// </summary>
internal sealed class FakeMySql8CachingSha2Server : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly TestPki _pki;
    private readonly System.Security.Cryptography.X509Certificates.X509Certificate2 _certificate;
    private readonly RSA _rsa = RSA.Create(2048);
    private readonly byte[] _stored;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public FakeMySql8CachingSha2Server(string directory, string user, string password)
    {
        User = user;
        _stored = SHA256.HashData(SHA256.HashData(Encoding.UTF8.GetBytes(password)));
        _pki = new TestPki(directory);
        _certificate = _pki.IssueServer();
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public string User { get; }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string CaFile => _pki.CaFile;

    /// <summary>Whether the server's cache holds the user's hash (fast path) or not (full authentication).</summary>
    public bool CacheHit { get; set; } = true;

    /// <summary>How each login went: "fast", "full-tls", "full-rsa", "refused: ...".</summary>
    public List<string> Logins { get; } = [];

    /// <summary>The last HandshakeResponse41 the fake received (user, schema, capabilities, connection attributes).</summary>
    public MySqlHandshakeResponse? LastResponse { get; private set; }

    /// <summary>Connections accepted (a refused login before the server still counts none).</summary>
    public int Connections;

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

            Interlocked.Increment(ref Connections);
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                await ServeLoginAsync(client.GetStream());
            }
            catch (Exception ex) when (ex is IOException or EndOfStreamException or System.Security.Authentication.AuthenticationException or ObjectDisposedException)
            {
                lock (Logins)
                {
                    Logins.Add("dropped: " + ex.GetType().Name);
                }
            }
        }
    }

    private async Task ServeLoginAsync(Stream stream)
    {
        var nonce = RandomNumberGenerator.GetBytes(20);
        for (var i = 0; i < nonce.Length; i++)
        {
            nonce[i] = (byte)(0x21 + (nonce[i] % 94));
        }

        var caps = MySqlCapabilities.Offered | MySqlCapabilities.Ssl;
        // HandshakeV10 with caching_sha2_password as the default plugin, as MySQL 8 sends it.
        var greeting = MySqlWire.Greeting("8.0.36-fake", 77, nonce, caps, 255, 2);
        var nameAt = greeting.Length - (MySqlWire.NativePassword.Length + 1);
        greeting = [.. greeting.AsSpan(0, nameAt), .. Encoding.ASCII.GetBytes(MySqlWire.CachingSha2Password + "\0")];
        MySqlWire.WriteHeader(greeting, greeting.Length - 4, 0);
        await stream.WriteAsync(greeting);

        var (sequence, payload) = await ReadAsync(stream);
        var tls = false;
        if (MySqlHandshakeResponse.IsSslRequest(payload))
        {
            var ssl = new SslStream(stream);
            await ssl.AuthenticateAsServerAsync(_certificate);
            stream = ssl;
            tls = true;
            (sequence, payload) = await ReadAsync(stream);
        }

        var response = MySqlHandshakeResponse.TryParse(payload, out var error) ?? throw new IOException(error);
        LastResponse = response;
        var scramble = AuthResponse(payload);
        var next = (byte)(sequence + 1);
        if (response.User != User || response.AuthPlugin != MySqlWire.CachingSha2Password || !ScrambleMatches(scramble, nonce))
        {
            Record("refused: scramble");
            await stream.WriteAsync(MySqlWire.Error(next, 1045, "28000", "Access denied for user '" + response.User + "'@'localhost' (using password: YES)"));
            return;
        }

        if (CacheHit)
        {
            await stream.WriteAsync(MySqlWire.Packet(next++, [MySqlWire.AuthMoreDataHeader, 0x03]));
            await stream.WriteAsync(MySqlWire.Ok(next));
            Record("fast");
            return;
        }

        await stream.WriteAsync(MySqlWire.Packet(next++, [MySqlWire.AuthMoreDataHeader, 0x04]));
        (sequence, payload) = await ReadAsync(stream);
        next = (byte)(sequence + 1);
        byte[] plain;
        string path;
        if (tls)
        {
            plain = payload;
            path = "full-tls";
        }
        else
        {
            if (payload is not [0x02])
            {
                Record("refused: expected a public key request without TLS");
                await stream.WriteAsync(MySqlWire.Error(next, 1045, "28000", "Access denied"));
                return;
            }

            await stream.WriteAsync(MySqlWire.Packet(next, [MySqlWire.AuthMoreDataHeader, .. Encoding.ASCII.GetBytes(_rsa.ExportSubjectPublicKeyInfoPem())]));
            (sequence, payload) = await ReadAsync(stream);
            next = (byte)(sequence + 1);
            plain = _rsa.Decrypt(payload, RSAEncryptionPadding.OaepSHA1);
            for (var i = 0; i < plain.Length; i++)
            {
                plain[i] ^= nonce[i % nonce.Length];
            }

            path = "full-rsa";
        }

        if (plain.Length == 0 || plain[^1] != 0 || !SHA256.HashData(SHA256.HashData(plain.AsSpan(0, plain.Length - 1))).AsSpan().SequenceEqual(_stored))
        {
            Record("refused: " + path);
            await stream.WriteAsync(MySqlWire.Error(next, 1045, "28000", "Access denied"));
            return;
        }

        await stream.WriteAsync(MySqlWire.Ok(next));
        Record(path);
    }

    /// <summary>The server's check: SHA256(stored + nonce) XOR response is SHA256(password), whose hash must be the stored one.</summary>
    private bool ScrambleMatches(byte[] scramble, byte[] nonce)
    {
        if (scramble.Length != 32)
        {
            return false;
        }

        var mask = SHA256.HashData([.. _stored, .. nonce]);
        var candidate = new byte[32];
        for (var i = 0; i < 32; i++)
        {
            candidate[i] = (byte)(scramble[i] ^ mask[i]);
        }

        return SHA256.HashData(candidate).AsSpan().SequenceEqual(_stored);
    }

    private static byte[] AuthResponse(byte[] payload)
    {
        var offset = 32;
        offset += Array.IndexOf(payload, (byte)0, offset) - offset + 1;
        var caps = (MySqlCapabilities)BinaryPrimitives.ReadUInt32LittleEndian(payload);
        int length = payload[offset];
        if (caps.HasFlag(MySqlCapabilities.PluginAuthLenencClientData) && length >= 251)
        {
            throw new IOException("a long auth response");
        }

        return payload.AsSpan(offset + 1, length).ToArray();
    }

    private void Record(string login)
    {
        lock (Logins)
        {
            Logins.Add(login);
        }
    }

    private static async Task<(byte Sequence, byte[] Payload)> ReadAsync(Stream stream)
    {
        var header = new byte[4];
        await stream.ReadExactlyAsync(header);
        var payload = new byte[MySqlWire.ReadLength(header)];
        await stream.ReadExactlyAsync(payload);
        return (header[3], payload);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accepting;
        }
        catch (OperationCanceledException)
        {
        }

        _certificate.Dispose();
        _pki.Dispose();
        _rsa.Dispose();
        _stop.Dispose();
    }
}
