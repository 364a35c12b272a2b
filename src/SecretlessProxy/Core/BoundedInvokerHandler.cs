namespace SecretlessProxy.Core;

/// <summary>
/// The transport handed to a cloud SDK (AWS, Azure): sends through a proxy-owned invoker and reads
/// each answer into memory under a size limit, inside the fetch's timeout. An SDK would otherwise
/// read an unbounded body after the headers: a broken or hostile endpoint must not grow the
/// proxy's memory.
/// </summary>
internal sealed class BoundedInvokerHandler(HttpMessageInvoker invoker, string endpointName, bool ownsInvoker = false) : HttpMessageHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await invoker.SendAsync(request, cancellationToken).ConfigureAwait(false);
        try
        {
            var body = await BoundedContent.ReadAsync(response.Content, BoundedContent.DefaultMaxBytes, cancellationToken).ConfigureAwait(false)
                ?? throw new CredentialFetchException(endpointName + " answer is larger than " + (BoundedContent.DefaultMaxBytes / 1024) + " KiB", isTransient: true);
            var content = new ByteArrayContent(body);
            foreach (var header in response.Content.Headers)
            {
                if (!string.Equals(header.Key, "Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    content.Headers.TryAddWithoutValidation(header.Key, header.Value);
                }
            }

            response.Content.Dispose();
            response.Content = content;
            return response;
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    protected override void Dispose(bool disposing)
    {
        // The proxy's token client is shared and outlives this handler; an invoker made for it is not.
        if (disposing && ownsInvoker)
        {
            invoker.Dispose();
        }
    }
}
