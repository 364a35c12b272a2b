using System.Net;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// Stands in for an upstream response's content so that the forwarder copies the body through a
/// <see cref="SecretMaskingStream"/>. Set after the forwarder has copied the content headers to the
/// app's response, so it carries none of its own; disposing it disposes the upstream content.
/// </summary>
internal sealed class SecretMaskingContent : HttpContent
{
    private readonly HttpContent _inner;
    private readonly ResponseSecretMasker _masker;

    public SecretMaskingContent(HttpContent inner, ResponseSecretMasker masker)
    {
        _inner = inner;
        _masker = masker;
    }

    protected override async Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) =>
        new SecretMaskingStream(await _inner.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), _masker);

    protected override Task<Stream> CreateContentReadStreamAsync() => CreateContentReadStreamAsync(CancellationToken.None);

    protected override Stream CreateContentReadStream(CancellationToken cancellationToken) =>
        new SecretMaskingStream(_inner.ReadAsStream(cancellationToken), _masker);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        var source = await CreateContentReadStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (source.ConfigureAwait(false))
        {
            await source.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
        }
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
