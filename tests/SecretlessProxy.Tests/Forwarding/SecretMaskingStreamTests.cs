using System.Text;
using Microsoft.AspNetCore.Http;
using Xunit;
using SecretlessProxy.Core;
using SecretlessProxy.Forwarding;
using SecretlessProxy.Injection;

namespace SecretlessProxy.Tests.Forwarding;

/// <summary>
/// The body masker and the header rewrites on their own: every way a body can be cut into reads
/// and read into buffers (down to one byte, zero-byte reads in between) gives the same masked
/// bytes, of the same length.
/// </summary>
public sealed class SecretMaskingStreamTests
{
    private const string Secret = "tok/en+12345678";

    private static Credential Credential(string secret = Secret, string? username = null) =>
        new(secret, username, DateTimeOffset.UnixEpoch, null);

    private static ResponseSecretMasker Masker(HttpRequestInjector rule, Credential? credential = null) =>
        ResponseSecretMasker.Create(rule, credential ?? Credential());

    public static TheoryData<int, int> Cuts() => new()
    {
        { 1, 1 }, { 1, 64 }, { 3, 2 }, { 7, 65536 }, { 64, 5 }, { 65536, 65536 }, { 0, 16 },
    };

    [Theory]
    [MemberData(nameof(Cuts))]
    public async Task Every_cut_of_the_body_gives_the_same_masked_bytes(int chunk, int readBuffer)
    {
        var body = "a" + Secret + Secret + "b tok/en+1234567 (a prefix only) " + Secret[..5] + "x" + Secret + "\n..." + "tok/en+1234";
        var expected = body.Replace(Secret, new string('*', Secret.Length), StringComparison.Ordinal);
        var chunks = Chunks(Encoding.UTF8.GetBytes(body), chunk == 0 ? new Random(13) : null, chunk);
        using var stream = new SecretMaskingStream(new ChunkedStream(chunks), Masker(new HeaderInjector("Authorization", "Bearer {token}")));

        var output = new MemoryStream();
        var buffer = new byte[readBuffer];
        while (true)
        {
            Assert.Equal(0, await stream.ReadAsync(Memory<byte>.Empty));
            var read = await stream.ReadAsync(buffer);
            if (read == 0)
            {
                break;
            }

            output.Write(buffer, 0, read);
        }

        Assert.Equal(expected, Encoding.UTF8.GetString(output.ToArray()));
    }

    [Fact]
    public void Synchronous_reads_mask_the_same_way()
    {
        var body = Encoding.UTF8.GetBytes("x" + Secret + "y");
        using var stream = new SecretMaskingStream(new ChunkedStream(Chunks(body, null, 2)), Masker(new HeaderInjector("X-Api-Key", "{token}")));
        var output = new MemoryStream();
        stream.CopyTo(output, 3);

        Assert.Equal("x" + new string('*', Secret.Length) + "y", Encoding.UTF8.GetString(output.ToArray()));
    }

    [Fact]
    public void Query_credentials_are_dropped_from_url_headers_and_masked_elsewhere()
    {
        var escaped = Uri.EscapeDataString(Secret);
        var masker = Masker(new QueryInjector("api_key"));
        IHeaderDictionary headers = new HeaderDictionary
        {
            ["Location"] = "https://api.example/v1/dir/?x=1&api_key=" + escaped + "&api%5Fkey=other#top",
            ["Content-Location"] = "/v1/items?api_key=" + escaped,
            ["Refresh"] = "5; url='/v1/next?a=b&api_key=" + escaped + "'",
            ["Link"] = "</v1/next?api_key=" + escaped + ">; rel=next",
            ["X-Debug"] = "raw " + Secret,
        };

        masker.MaskHeaders(headers, rewriteUrls: true);

        Assert.Equal("https://api.example/v1/dir/?x=1#top", headers.Location.ToString());
        Assert.Equal("/v1/items", headers.ContentLocation.ToString());
        Assert.Equal("5; url='/v1/next?a=b'", headers["Refresh"].ToString());
        Assert.Equal("</v1/next?api_key=" + new string('*', escaped.Length) + ">; rel=next", headers.Link.ToString());
        Assert.Equal("raw " + new string('*', Secret.Length), headers["X-Debug"].ToString());
    }

    [Fact]
    public void SigV4_masks_the_session_token_it_sends_and_nothing_of_the_keys_it_does_not()
    {
        var token = "FwoGZXIvYXdzEJr//////////wEaDsessiontoken";
        var keys = new SigningKeys("AKIAEXAMPLEACCESSKEY", "secret-access-key-never-sent", token);
        var credential = new Credential(keys.SecretAccessKey, null, DateTimeOffset.UnixEpoch, null, signingKeys: keys);
        var masker = Masker(new AwsSigV4Injector("s3", "us-east-1", null, 1024, TimeProvider.System), credential);

        Assert.Equal("<t>" + new string('*', token.Length) + "</t>", masker.MaskText("<t>" + token + "</t>"));
        Assert.Null(masker.MaskText("Credential=AKIAEXAMPLEACCESSKEY/20260101/us-east-1/s3/aws4_request"));
    }

    [Fact]
    public void A_policy_without_a_credential_in_the_request_has_nothing_to_mask()
    {
        Assert.True(Masker(new AwsSigV4Injector("s3", "us-east-1", null, 1024, TimeProvider.System), new Credential("k", null, DateTimeOffset.UnixEpoch, null, signingKeys: new SigningKeys("AKIA", "secret", null))).IsEmpty);
    }

    private static List<byte[]> Chunks(byte[] body, Random? random, int size)
    {
        var chunks = new List<byte[]>();
        for (var at = 0; at < body.Length;)
        {
            var length = Math.Min(random?.Next(1, 9) ?? size, body.Length - at);
            chunks.Add(body[at..(at + length)]);
            at += length;
        }

        return chunks;
    }

    /// <summary>An upstream body arriving in the given pieces: each read returns at most one piece.</summary>
    private sealed class ChunkedStream(List<byte[]> chunks) : Stream
    {
        private int _chunk;
        private int _offset;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (buffer.IsEmpty || _chunk == chunks.Count)
            {
                return 0;
            }

            var piece = chunks[_chunk].AsSpan(_offset);
            var n = Math.Min(piece.Length, buffer.Length);
            piece[..n].CopyTo(buffer);
            _offset += n;
            if (_offset == chunks[_chunk].Length)
            {
                _chunk++;
                _offset = 0;
            }

            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
