using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using SecretlessProxy.Listeners.MySql;
using Xunit;

namespace SecretlessProxy.Tests.Listeners.MySql;

/// <summary>The MySQL listener's codecs and proofs, without a server: RFC 8032 vectors, packets, the command filter.</summary>
public sealed class MySqlWireTests
{
    [Theory]
    // RFC 8032, section 7.1, TEST 1-3: with a 32-byte password, MariaDB's derivation is RFC 8032 signing.
    [InlineData("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "", "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")]
    [InlineData("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "72", "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")]
    [InlineData("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7", "af82", "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a")]
    public void Ed25519_signs_as_rfc_8032_when_the_password_is_a_32_byte_seed(string seed, string message, string signature)
    {
        Assert.True(MariaDbEd25519.BaseIsOnCurve());
        Assert.Equal(signature, Convert.ToHexStringLower(MariaDbEd25519.Sign(Convert.FromHexString(message), Convert.FromHexString(seed))));
    }

    [Fact]
    public void Native_and_caching_sha2_proofs_are_20_and_32_bytes_and_empty_for_an_empty_password()
    {
        var nonce = Encoding.ASCII.GetBytes("abcdefghijklmnopqrst");
        Assert.Equal(20, MySqlScramble.Native("secret", nonce).Length);
        Assert.Equal(32, MySqlScramble.CachingSha2("secret", nonce).Length);
        Assert.Empty(MySqlScramble.Native(string.Empty, nonce));
        Assert.NotEqual(MySqlScramble.Native("secret", nonce), MySqlScramble.Native("secret", Encoding.ASCII.GetBytes("ABCDEFGHIJKLMNOPQRST")));
        Assert.Equal("secret\0"u8.ToArray(), MySqlScramble.Cleartext("secret"));
    }

    [Fact]
    public void The_greeting_parses_back_and_asks_for_native_password()
    {
        var scramble = Encoding.ASCII.GetBytes("0123456789abcdefghij");
        var packet = MySqlWire.Greeting("8.0.0-test", 1234, scramble, MySqlCapabilities.Offered | MySqlCapabilities.Ssl, 45, 2);
        Assert.Equal(0, packet[3]);
        var greeting = MySqlServerGreeting.TryParse(packet.AsSpan(4), out var error);
        Assert.True(greeting is not null, error);
        Assert.Equal("8.0.0-test", greeting.ServerVersion);
        Assert.Equal(1234u, greeting.ConnectionId);
        Assert.Equal(scramble, greeting.Scramble);
        Assert.Equal(MySqlWire.NativePassword, greeting.AuthPlugin);
        Assert.True(greeting.Capabilities.HasFlag(MySqlCapabilities.Ssl));
        Assert.False(greeting.IsMariaDb);
    }

    [Fact]
    public void A_handshake_response_round_trips_with_schema_and_attributes()
    {
        var attributes = new ArrayBufferWriter<byte>();
        MySqlWire.WriteLengthEncoded(attributes, 4);
        attributes.Write("_pid"u8);
        MySqlWire.WriteLengthEncoded(attributes, 3);
        attributes.Write("123"u8);
        var caps = MySqlCapabilities.Protocol41 | MySqlCapabilities.SecureConnection | MySqlCapabilities.PluginAuth | MySqlCapabilities.PluginAuthLenencClientData | MySqlCapabilities.ConnectWithDb | MySqlCapabilities.ConnectAttrs;
        var packet = MySqlHandshakeResponse.Upstream(1, caps, 1 << 24, 45, "app", new byte[20], "orders", MySqlWire.NativePassword, attributes.WrittenSpan.ToArray());
        var parsed = MySqlHandshakeResponse.TryParse(packet.AsSpan(4), out var error);
        Assert.True(parsed is not null, error);
        Assert.Equal("app", parsed.User);
        Assert.Equal("orders", parsed.Schema);
        Assert.Equal(MySqlWire.NativePassword, parsed.AuthPlugin);
        Assert.Equal(attributes.WrittenSpan.ToArray(), parsed.ConnectionAttributes);
        Assert.Equal(1u << 24, parsed.MaxPacketSize);
    }

    [Theory]
    [InlineData("")]
    [InlineData("00")]
    [InlineData("0002000000000001")]
    public void Malformed_handshake_responses_are_refused(string hex)
    {
        Assert.Null(MySqlHandshakeResponse.TryParse(Convert.FromHexString(hex), out var error));
        Assert.NotEmpty(error);
    }

    [Fact]
    public void Truncated_attributes_are_refused()
    {
        var caps = MySqlCapabilities.Protocol41 | MySqlCapabilities.SecureConnection | MySqlCapabilities.ConnectAttrs;
        // Fixed part, "app" and its NUL, an empty auth response, then attributes said to be 200 bytes long.
        var payload = new byte[32 + 4 + 1 + 1];
        BitConverter.TryWriteBytes(payload, (uint)caps);
        "app"u8.CopyTo(payload.AsSpan(32));
        payload[^1] = 200;
        Assert.Null(MySqlHandshakeResponse.TryParse(payload, out var error));
        Assert.Contains("attributes", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_command_filter_replaces_change_user_and_rewrites_a_kill_of_a_proxy_id_and_passes_the_rest()
    {
        var threads = new MySqlThreadRegistry();
        var proxyId = threads.Allocate();
        threads.Register(proxyId, "db", 42);
        var changeUsers = 0;
        var pipe = new Pipe();
        var server = new MemoryStream();
        var copy = MySqlCommandFilter.CopyAsync(pipe.Reader, server, "db", threads, () => changeUsers++, CancellationToken.None);

        byte[] Command(byte command, string text) => MySqlWire.Packet(0, [command, .. Encoding.UTF8.GetBytes(text)]);
        var select = Command(MySqlWire.ComQuery, "SELECT 1");
        var changeUser = Command(MySqlWire.ComChangeUser, "root\0\0");
        var reset = Command(MySqlWire.ComResetConnection, string.Empty);
        var killOther = Command(MySqlWire.ComQuery, "KILL QUERY 7");
        // Fed a byte at a time: the filter must find the packets across any split.
        foreach (var b in (byte[])[.. select, .. changeUser, .. reset, .. Command(MySqlWire.ComQuery, "kill query " + proxyId + ";"), .. killOther])
        {
            await pipe.Writer.WriteAsync(new[] { b });
        }

        await pipe.Writer.CompleteAsync();
        await copy;

        var expected = (byte[])[.. select, .. Command(MySqlWire.ComQuery, "SIGNAL SQLSTATE '28000' SET MYSQL_ERRNO = 1227, MESSAGE_TEXT = '" + MySqlCommandFilter.ChangeUserRefusal.Replace("'", "''", StringComparison.Ordinal) + "'"), .. reset, .. Command(MySqlWire.ComQuery, "kill query 42;"), .. killOther];
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(server.ToArray()));
        Assert.Equal(1, changeUsers);
        Assert.False(threads.TryResolve("other-listener", proxyId, out _));
    }

    [Fact]
    public async Task The_command_filter_passes_a_multi_packet_payload_whose_continuation_looks_like_change_user()
    {
        var pipe = new Pipe();
        var server = new MemoryStream();
        var copy = MySqlCommandFilter.CopyAsync(pipe.Reader, server, "db", new MySqlThreadRegistry(), () => throw new InvalidOperationException("not a command"), CancellationToken.None);
        var big = new byte[4 + MySqlWire.MaxPayloadLength];
        MySqlWire.WriteHeader(big, MySqlWire.MaxPayloadLength, 0);
        big[4] = MySqlWire.ComQuery;
        // The continuation has sequence 1 and starts with 0x11; a following packet with sequence 0
        // would only be a command if the previous one did not continue.
        var tail = MySqlWire.Packet(1, [MySqlWire.ComChangeUser, 1, 2]);
        await pipe.Writer.WriteAsync(big);
        await pipe.Writer.WriteAsync(tail);
        await pipe.Writer.CompleteAsync();
        await copy;
        Assert.Equal(big.Length + tail.Length, server.Length);
    }
}
