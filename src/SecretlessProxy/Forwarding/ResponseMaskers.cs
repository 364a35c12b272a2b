using System.Runtime.CompilerServices;
using SecretlessProxy.Core;
using SecretlessProxy.Injection;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// One <see cref="ResponseSecretMasker"/> per injected value, built on its first response and kept
/// as long as the credential object lives (a refreshed or reloaded credential is a new object, so
/// its masker is built anew and the old one goes with the old value).
/// </summary>
internal sealed partial class ResponseMaskers
{
    private readonly ConditionalWeakTable<Credential, ResponseSecretMasker> _maskers = new();
    private readonly ILogger _logger;

    public ResponseMaskers(ILogger logger)
    {
        _logger = logger;
    }

    /// <summary>The masker for this value, or null when the response has nothing to mask.</summary>
    public ResponseSecretMasker? For(HttpRequestInjector rule, Credential credential, string listener)
    {
        if (!_maskers.TryGetValue(credential, out var masker) || !ReferenceEquals(masker.Rule, rule))
        {
            // A credential shared by policies that inject it differently swaps maskers; still correct.
            masker = ResponseSecretMasker.Create(rule, credential);
            _maskers.AddOrUpdate(credential, masker);
            if (masker.SecretTooShort)
            {
                Log.SecretTooShort(_logger, listener, rule.Kind, ResponseSecretMasker.MinimumFormLength);
            }
        }

        return masker.IsEmpty ? null : masker;
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.ResponseMaskingSecretTooShort, LogLevel.Warning, "A credential injected ({Injection}) on listener {Listener} is shorter than {MinimumLength} bytes: responses are not masked for the value itself (only longer forms of it), because so short a value matches ordinary text")]
        public static partial void SecretTooShort(ILogger logger, string listener, string injection, int minimumLength);
    }
}
