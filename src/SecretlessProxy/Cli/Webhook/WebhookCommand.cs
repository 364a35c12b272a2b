using System.CommandLine;
using System.Net;
using System.Security.Cryptography;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>
/// <c>webhook --tls-cert FILE --tls-key FILE</c>: serves the mutating admission webhook that adds
/// the proxy to pods that ask for it by annotation (<see cref="InjectionAnnotations"/>), until
/// SIGTERM. Prints the bound address, so a caller that asked for port 0 learns the real one.
/// </summary>
internal static class WebhookCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var url = new Option<string>("--url") { Description = "Where to listen: https://ADDRESS:PORT (an IP address; port 0 picks a free one).", DefaultValueFactory = _ => "https://0.0.0.0:8443" };
        var certificate = new Option<FileInfo>("--tls-cert") { Description = "PEM certificate (leaf first, then intermediates), e.g. cert-manager's tls.crt; re-read when it changes.", Required = true };
        var key = new Option<FileInfo>("--tls-key") { Description = "PEM private key, e.g. cert-manager's tls.key; re-read when it changes.", Required = true };
        var image = new Option<string>("--proxy-image") { Description = "The image the injected containers run.", DefaultValueFactory = _ => SidecarSettings.Default.Image };
        var pullPolicy = new Option<string>("--image-pull-policy") { Description = "Always, IfNotPresent or Never.", DefaultValueFactory = _ => SidecarSettings.Default.ImagePullPolicy };
        var failurePolicy = new Option<string>("--failure-policy") { Description = "A pod that asks for the proxy but cannot get it: Fail (refused, with the reason) or Ignore (admitted without it, with a warning).", DefaultValueFactory = _ => nameof(WebhookFailurePolicy.Fail) };
        var maxBytes = new Option<long>("--max-request-bytes") { Description = "Largest admission review accepted (413 above).", DefaultValueFactory = _ => WebhookOptions.DefaultMaxRequestBytes };
        var command = new Command("webhook", "Serve the Kubernetes mutating admission webhook that injects the proxy into annotated pods (secretless-proxy.io/inject).")
        {
            url, certificate, key, image, pullPolicy, failurePolicy, maxBytes,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var problems = new List<string>();
            var endPoint = ParseUrl(parse.GetValue(url) ?? string.Empty, problems);
            var imageName = parse.GetValue(image) ?? string.Empty;
            if (string.IsNullOrWhiteSpace(imageName) || imageName.Any(char.IsWhiteSpace))
            {
                problems.Add("--proxy-image: '" + imageName + "' is not an image reference");
            }

            var pull = parse.GetValue(pullPolicy) ?? string.Empty;
            if (pull is not ("Always" or "IfNotPresent" or "Never"))
            {
                problems.Add("--image-pull-policy: '" + pull + "' is not Always, IfNotPresent or Never");
            }

            // By name only: Enum.TryParse would also take "1".
            var policyName = Enum.GetNames<WebhookFailurePolicy>().FirstOrDefault(n => string.Equals(n, parse.GetValue(failurePolicy), StringComparison.OrdinalIgnoreCase));
            var policy = policyName is null ? WebhookFailurePolicy.Fail : Enum.Parse<WebhookFailurePolicy>(policyName);
            if (policyName is null)
            {
                problems.Add("--failure-policy: '" + parse.GetValue(failurePolicy) + "' is not Fail or Ignore");
            }

            var limit = parse.GetValue(maxBytes);
            if (limit < 1024)
            {
                problems.Add("--max-request-bytes: " + limit + " is too small for an admission review (at least 1024)");
            }

            if (problems.Count > 0)
            {
                foreach (var problem in problems)
                {
                    await error.WriteLineAsync("secretless-proxy webhook: " + problem).ConfigureAwait(false);
                }

                return ExitCodes.InvalidConfig;
            }

            var options = new WebhookOptions
            {
                EndPoint = endPoint!,
                CertificateFile = parse.GetValue(certificate)!.FullName,
                KeyFile = parse.GetValue(key)!.FullName,
                Sidecar = new SidecarSettings(imageName, pull),
                FailurePolicy = policy,
                MaxRequestBytes = limit,
            };
            WebhookHost host;
            try
            {
                host = await WebhookHost.StartAsync(options, ConfigureLogging, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
            {
                // Names the file or the address; a key's contents never reach an exception message.
                await error.WriteLineAsync("secretless-proxy webhook: could not start: " + ex.Message).ConfigureAwait(false);
                return ExitCodes.Failure;
            }

            await using (host.ConfigureAwait(false))
            {
                await output.WriteLineAsync("secretless-proxy webhook: listening on https://" + host.EndPoint).ConfigureAwait(false);
                await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                try
                {
                    await host.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // SIGTERM or Ctrl-C: stop serving; Kubernetes has already taken the pod out of the Service.
                }
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static IPEndPoint? ParseUrl(string text, List<string> problems)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttps || uri.AbsolutePath != "/" || uri.Port is < 0 or > 65535)
        {
            problems.Add("--url: '" + text + "' is not https://ADDRESS:PORT (the API server calls webhooks over TLS only)");
            return null;
        }

        if (!IPAddress.TryParse(uri.Host.Trim('[', ']'), out var address))
        {
            problems.Add("--url: '" + uri.Host + "' is not an IP address (0.0.0.0 listens on every interface)");
            return null;
        }

        return new IPEndPoint(address, uri.Port);
    }

    private static void ConfigureLogging(ILoggingBuilder logging) => logging.AddSimpleConsole(o =>
    {
        o.SingleLine = true;
        o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
        o.UseUtcTimestamp = true;
    });
}
