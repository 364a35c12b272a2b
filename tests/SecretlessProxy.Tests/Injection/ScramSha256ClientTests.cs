using System.Security.Cryptography;
using System.Text;
using SecretlessProxy.Injection;
using Xunit;

namespace SecretlessProxy.Tests.Injection;

/// <summary>
/// The proxy's SCRAM-SHA-256 client in memory: RFC 7677's published exchange reproduced byte for
/// byte, every malformed or foreign server-first message refused, the iteration count left to the
/// caller up to the proxy's ceiling, and a server signature that does not verify treated as an
/// impostor (nothing remembered in the salted-password cache). The login-level rules on the count
/// (at least 4096 from an unverified server) are in PostgresWeakExchangeTests.
/// </summary>
public sealed class ScramSha256ClientTests
{
    // RFC 7677 section 3.
    private const string RfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
    private const string RfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    private const string RfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    private const string RfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
    private const string RfcSalt = "W22ZaJ0SNY7soEsUEjb6gQ==";

    private static ScramSha256Client RfcClient() => new(channelBinding: null, tlsInUse: false, serverOffersPlus: false, RfcClientNonce, "user");

    [Fact]
    public async Task The_RFC_7677_exchange_gives_its_client_proof_and_verifies_its_server_signature()
    {
        var client = RfcClient();
        var cache = new SaltedPasswordCache();

        Assert.Equal("n,,n=user,r=" + RfcClientNonce, Encoding.ASCII.GetString(client.ClientFirstMessage()));
        var first = client.ReadServerFirst(RfcServerFirst);
        Assert.Equal(RfcServerFirst, first.Message);
        Assert.Equal("rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", first.Nonce);
        Assert.Equal(Convert.FromBase64String(RfcSalt), first.Salt);
        Assert.Equal(4096, first.Iterations);

        var final = await client.ClientFinalMessageAsync(first, "pencil", cache);

        Assert.Equal(RfcClientFinal, Encoding.ASCII.GetString(final));
        Assert.True(client.VerifyServerFinal(RfcServerFinal, out var serverError));
        Assert.Null(serverError);
        Assert.Equal("SCRAM-SHA-256", client.MechanismName);
    }

    [Fact]
    public async Task The_salted_password_is_remembered_only_after_the_server_proved_itself_and_then_gives_the_same_proof()
    {
        var salt = Convert.FromBase64String(RfcSalt);
        var cache = new SaltedPasswordCache();
        var first = RfcClient();
        var proof = await first.ClientFinalMessageAsync(first.ReadServerFirst(RfcServerFirst), "pencil", cache);

        // Not yet proven: a server that cannot sign must not plant or displace an entry.
        Assert.Null(cache.TryGet("pencil", salt, 4096));
        Assert.True(first.VerifyServerFinal(RfcServerFinal, out _));
        Assert.Equal(SaltedPasswordCache.Derive("pencil", salt, 4096).SaltedPassword, cache.TryGet("pencil", salt, 4096));

        // Another password, salt or count misses.
        Assert.Null(cache.TryGet("pencil2", salt, 4096));
        Assert.Null(cache.TryGet("pencil", salt.Select(b => (byte)(b ^ 1)).ToArray(), 4096));
        Assert.Null(cache.TryGet("pencil", salt, 4097));

        // A hit computes the same proof as the derivation did.
        var second = RfcClient();
        Assert.Equal(proof, await second.ClientFinalMessageAsync(second.ReadServerFirst(RfcServerFirst), "pencil", cache));
        Assert.True(second.VerifyServerFinal(RfcServerFinal, out _));
    }

    [Fact]
    public async Task A_server_signature_that_does_not_verify_fails_and_leaves_the_cache_empty()
    {
        var salt = Convert.FromBase64String(RfcSalt);
        var forged = "v=" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        foreach (var serverFinal in new[] { forged, "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", "v=not base64!", "v=" + Convert.ToBase64String(new byte[16]), "v=", RfcServerFinal[2..], "x=" + RfcServerFinal[2..] })
        {
            var client = RfcClient();
            var cache = new SaltedPasswordCache();
            await client.ClientFinalMessageAsync(client.ReadServerFirst(RfcServerFirst), "pencil", cache);

            Assert.False(client.VerifyServerFinal(serverFinal, out var serverError), serverFinal);
            Assert.Null(serverError);
            Assert.Null(cache.TryGet("pencil", salt, 4096));
        }
    }

    [Fact]
    public async Task A_server_error_is_reported_and_is_not_a_verification()
    {
        var client = RfcClient();
        await client.ClientFinalMessageAsync(client.ReadServerFirst(RfcServerFirst), "pencil", new SaltedPasswordCache());

        Assert.False(client.VerifyServerFinal("e=invalid-proof", out var serverError));
        Assert.Equal("invalid-proof", serverError);
    }

    [Fact]
    public void A_signature_before_any_proof_was_sent_does_not_verify()
    {
        var client = RfcClient();
        client.ReadServerFirst(RfcServerFirst);

        Assert.False(client.VerifyServerFinal(RfcServerFinal, out var serverError));
        Assert.Null(serverError);
    }

    public static TheoryData<string, string> MalformedServerFirsts => new()
    {
        { string.Empty, "the server's SCRAM challenge lacks a nonce, salt or iteration count" },
        { "s=" + RfcSalt + ",i=4096", "the server's SCRAM challenge lacks a nonce, salt or iteration count" },
        { "r=" + RfcClientNonce + "srv,i=4096", "the server's SCRAM challenge lacks a nonce, salt or iteration count" },
        { "r=" + RfcClientNonce + "srv,s=" + RfcSalt, "the server's SCRAM challenge lacks a nonce, salt or iteration count" },
        { "r=" + RfcClientNonce + "srv,s=" + RfcSalt + ",i=0", "the server's SCRAM challenge lacks a nonce, salt or iteration count" },
        { "r=" + RfcClientNonce + "srv,s=" + RfcSalt + ",i=-1", "the server's SCRAM iteration count is not a number (or is beyond any the proxy computes)" },
        { "r=" + RfcClientNonce + "srv,s=" + RfcSalt + ",i=+4096", "the server's SCRAM iteration count is not a number (or is beyond any the proxy computes)" },
        { "r=" + RfcClientNonce + "srv,s=" + RfcSalt + ",i=4096.0", "the server's SCRAM iteration count is not a number (or is beyond any the proxy computes)" },
        { "r=" + RfcClientNonce + "srv,s=" + RfcSalt + ",i=lots", "the server's SCRAM iteration count is not a number (or is beyond any the proxy computes)" },
        { "r=" + RfcClientNonce + "srv,s=" + RfcSalt + ",i=2147483648", "the server's SCRAM iteration count is not a number (or is beyond any the proxy computes)" },
        { "m=ext,r=" + RfcClientNonce + "srv,s=" + RfcSalt + ",i=4096", "the server asked for a SCRAM extension the proxy does not support" },
        { "r=" + RfcClientNonce + "srv,s=not*base64,i=4096", "the server's SCRAM salt is not base64 of 1 to 1024 bytes" },
        { "r=" + RfcClientNonce + "srv,s=,i=4096", "the server's SCRAM salt is not base64 of 1 to 1024 bytes" },
        { "r=" + RfcClientNonce + "srv,s=" + Convert.ToBase64String(new byte[1025]) + ",i=4096", "the server's SCRAM salt is not base64 of 1 to 1024 bytes" },
    };

    [Theory]
    [MemberData(nameof(MalformedServerFirsts))]
    public void A_malformed_server_first_message_is_refused_with_its_reason(string serverFirst, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => RfcClient().ReadServerFirst(serverFirst));

        Assert.Equal(reason, ex.Message);
    }

    [Theory]
    [InlineData("r=someone-elses-nonce%hvYDpWUa2RaTCAfuxFIlj")]
    [InlineData("r=" + RfcClientNonce)]
    [InlineData("r=rOprNGfwEbeRWgbNEkq")]
    [InlineData("r=xrOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj")]
    [InlineData("r=ROPRNGFWEBERWGBNEKQO%hvYDpWUa2RaTCAfuxFIlj")]
    public void A_nonce_that_does_not_extend_the_clients_is_not_an_answer_to_it(string nonce)
    {
        var ex = Assert.Throws<FormatException>(() => RfcClient().ReadServerFirst(nonce + ",s=" + RfcSalt + ",i=4096"));

        Assert.Equal("the server's SCRAM nonce does not extend the proxy's", ex.Message);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4095)]
    [InlineData(ScramSha256Client.MaximumIterations + 1)]
    [InlineData(int.MaxValue)]
    public void Any_positive_count_is_read_and_left_to_the_caller_to_judge(int iterations)
    {
        var first = RfcClient().ReadServerFirst("r=" + RfcClientNonce + "srv,s=" + RfcSalt + ",i=" + iterations);

        Assert.Equal(iterations, first.Iterations);
    }

    [Theory]
    [InlineData(ScramSha256Client.MaximumIterations + 1)]
    [InlineData(int.MaxValue)]
    public async Task No_proof_is_computed_past_the_proxys_iteration_ceiling(int iterations)
    {
        var client = RfcClient();
        var first = client.ReadServerFirst("r=" + RfcClientNonce + "srv,s=" + RfcSalt + ",i=" + iterations);

        var ex = await Assert.ThrowsAsync<FormatException>(async () => await client.ClientFinalMessageAsync(first, "pencil", new SaltedPasswordCache()));

        Assert.Equal("the server asked for " + iterations + " SCRAM iterations; the proxy computes at most 1000000", ex.Message);
    }

    [Fact]
    public async Task Unknown_attributes_are_ignored_and_a_single_iteration_still_gives_a_proof()
    {
        var client = RfcClient();
        var first = client.ReadServerFirst("r=" + RfcClientNonce + "srv,s=" + RfcSalt + ",i=1,x=future");

        var final = Encoding.ASCII.GetString(await client.ClientFinalMessageAsync(first, "pencil", new SaltedPasswordCache()));

        Assert.StartsWith("c=biws,r=" + RfcClientNonce + "srv,p=", final, StringComparison.Ordinal);
        Assert.Equal(32, Convert.FromBase64String(final[(final.IndexOf(",p=", StringComparison.Ordinal) + 3)..]).Length);
    }

    [Fact]
    public void A_login_client_names_no_user_and_uses_a_fresh_random_nonce()
    {
        var one = Encoding.ASCII.GetString(new ScramSha256Client(null, tlsInUse: false, serverOffersPlus: false).ClientFirstMessage());
        var two = Encoding.ASCII.GetString(new ScramSha256Client(null, tlsInUse: false, serverOffersPlus: false).ClientFirstMessage());

        // PostgreSQL takes the user from the startup message; the SCRAM user name is empty.
        Assert.StartsWith("n,,n=,r=", one, StringComparison.Ordinal);
        Assert.Equal(18, Convert.FromBase64String(one["n,,n=,r=".Length..]).Length);
        Assert.NotEqual(one, two);
    }

    [Fact]
    public void A_user_name_with_comma_or_equals_is_escaped_as_RFC_5802_says()
    {
        var client = new ScramSha256Client(null, tlsInUse: false, serverOffersPlus: false, RfcClientNonce, "a=b,c");

        Assert.Equal("n,,n=a=3Db=2Cc,r=" + RfcClientNonce, Encoding.ASCII.GetString(client.ClientFirstMessage()));
    }

    [Fact]
    public async Task Over_TLS_without_an_offer_of_PLUS_the_client_says_it_could_have_bound()
    {
        var client = new ScramSha256Client(null, tlsInUse: true, serverOffersPlus: false, RfcClientNonce, string.Empty);

        Assert.Equal("y,,n=,r=" + RfcClientNonce, Encoding.ASCII.GetString(client.ClientFirstMessage()));
        Assert.Equal("SCRAM-SHA-256", client.MechanismName);
        var final = Encoding.ASCII.GetString(await client.ClientFinalMessageAsync(client.ReadServerFirst(RfcServerFirst), "pencil", new SaltedPasswordCache()));
        Assert.StartsWith("c=" + Convert.ToBase64String("y,,"u8.ToArray()) + ",", final, StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_channel_binding_the_client_uses_PLUS_and_sends_the_certificate_hash()
    {
        var binding = SHA256.HashData("the server's certificate"u8);
        var client = new ScramSha256Client(binding, tlsInUse: true, serverOffersPlus: true, RfcClientNonce, string.Empty);

        Assert.Equal("SCRAM-SHA-256-PLUS", client.MechanismName);
        Assert.Equal("p=tls-server-end-point,,n=,r=" + RfcClientNonce, Encoding.ASCII.GetString(client.ClientFirstMessage()));
        var final = Encoding.ASCII.GetString(await client.ClientFinalMessageAsync(client.ReadServerFirst(RfcServerFirst), "pencil", new SaltedPasswordCache()));
        byte[] cbindInput = [.. "p=tls-server-end-point,,"u8, .. binding];
        Assert.StartsWith("c=" + Convert.ToBase64String(cbindInput) + ",r=", final, StringComparison.Ordinal);
    }
}
