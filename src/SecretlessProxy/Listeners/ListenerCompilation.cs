using System.Net;
using SecretlessProxy.Core;
using SecretlessProxy.Policy;
using SecretlessProxy.Runtime;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Listeners;

/// <summary>
/// One listener being compiled: its name, key path and options, where its problems go, and what a
/// kind may ask of the configuration compiler (file paths, the bind-address rules it shares with
/// the admin endpoint, what a credential yields). The pieces several kinds compile alike are here,
/// with the messages the compiler has always given.
/// </summary>
internal abstract class ListenerCompilation
{
    protected ListenerCompilation(string name, string key, ListenerOptions options, IConfigurationSection section, List<ConfigError> errors, UnmatchedBehavior globalUnmatched, IReadOnlyList<string> injectedQueryParameters, bool hasLocalCa)
    {
        Name = name;
        Key = key;
        Options = options;
        Section = section;
        Errors = errors;
        GlobalUnmatched = globalUnmatched;
        InjectedQueryParameters = injectedQueryParameters;
        HasLocalCa = hasLocalCa;
    }

    public string Name { get; }

    /// <summary>The listener's key path, <c>SecretlessProxy:Listeners:name</c>.</summary>
    public string Key { get; }

    /// <summary>The keys every kind shares, bound.</summary>
    public ListenerOptions Options { get; }

    /// <summary>
    /// The listener's configuration section: a kind with keys of its own binds them from here
    /// (<c>Section.GetSection("MySql").Get&lt;T&gt;()</c>) rather than adding them to <see cref="ListenerOptions"/>.
    /// </summary>
    public IConfigurationSection Section { get; }

    public List<ConfigError> Errors { get; }

    /// <summary>The proxy-wide <c>Unmatched</c>, for a listener that sets none.</summary>
    public UnmatchedBehavior GlobalUnmatched { get; }

    /// <summary>Query parameters some policy injects: a listener that records query strings redacts them.</summary>
    public IReadOnlyList<string> InjectedQueryParameters { get; }

    /// <summary>Whether the configuration has a <c>LocalCa</c>.</summary>
    public bool HasLocalCa { get; }

    /// <summary>Reports a problem with the listener's key <paramref name="subKey"/> (<c>Upstream</c>, <c>Tls:Mode</c>).</summary>
    public void Add(string subKey, string message) => Errors.Add(new(Key + ":" + subKey, message));

    /// <summary>Whether a problem with <paramref name="subKey"/> of this listener was reported already.</summary>
    public bool Reported(string subKey)
    {
        var key = Key + ":" + subKey;
        return Errors.Any(e => string.Equals(e.Key, key, StringComparison.Ordinal));
    }

    /// <summary><c>http://address:port</c>, as every HTTP endpoint of the proxy is bound.</summary>
    public abstract IPEndPoint? ParseBindUrl(string? url, string key);

    /// <summary><c>unix:/absolute/path</c>.</summary>
    public abstract EndPoint? ParseUnixUrl(string url, string key);

    /// <summary><c>Deny</c> or <c>PassThrough</c>; null when unset or invalid (reported).</summary>
    public abstract UnmatchedBehavior? ParseUnmatched(string? value, string key);

    /// <summary>A positive duration, or <paramref name="fallback"/> when unset.</summary>
    public abstract TimeSpan Positive(TimeSpan? value, TimeSpan fallback, string key);

    /// <summary>The full path of a file the configuration names, reported when it must exist and does not.</summary>
    public abstract string RequireFile(string path, string key);

    /// <summary>The URL with any user info masked, for error messages.</summary>
    public abstract string WithoutUserInfo(string url);

    /// <summary>
    /// Why the named credential cannot log in to a database (unknown, no password, no user name), as
    /// the message for the listener's <c>Credential</c> key; null when it can.
    /// </summary>
    public abstract string? DatabaseLoginProblem(string credentialName);

    /// <summary>
    /// What the named credential yields and the one server it is minted for (null when it is not
    /// tied to one), as its keys declare; null for an unknown credential.
    /// </summary>
    public virtual (CredentialShape Yields, Credentials.CredentialAudience? Audience)? DeclaredCredential(string credentialName) => null;

    /// <summary>An HTTP listener's <c>Url</c>: <c>http://address:port</c> or <c>unix:/path</c>.</summary>
    public EndPoint? HttpOrUnixBindUrl() =>
        Options.Url?.StartsWith("unix:", StringComparison.OrdinalIgnoreCase) == true
            ? ParseUnixUrl(Options.Url, Key + ":Url")
            : ParseBindUrl(Options.Url, Key + ":Url");

    /// <summary><c>tcp://127.0.0.1:5432</c>: an address a raw TCP listener binds.</summary>
    public IPEndPoint? ParseTcpBindUrl(string? url, string key, string example = "tcp://127.0.0.1:5432")
    {
        if (url is null || !url.StartsWith("tcp://", StringComparison.OrdinalIgnoreCase))
        {
            Errors.Add(new(key, url is null ? "is required (for example " + example + ")" : "'" + WithoutUserInfo(url) + "' is not a tcp://address:port URL"));
            return null;
        }

        // The HTTP parser's rules (IP or localhost, explicit port, no path or user info) hold for
        // tcp:// too; its messages name tcp://.
        var start = Errors.Count;
        var endpoint = ParseBindUrl("http://" + url["tcp://".Length..], key);
        for (var i = start; i < Errors.Count; i++)
        {
            Errors[i] = Errors[i] with { Message = Errors[i].Message.Replace("http://", "tcp://", StringComparison.Ordinal) };
        }

        return endpoint;
    }

    /// <summary>The listener's <c>Unmatched</c>, else the proxy-wide one.</summary>
    public UnmatchedBehavior Unmatched() => ParseUnmatched(Options.Unmatched, Key + ":Unmatched") ?? GlobalUnmatched;

    /// <summary><c>RecordQuery</c> and <c>RedactQueryParameters</c> of an HTTP listener.</summary>
    public QueryRedactor? QueryRecording()
    {
        if (Options.RecordQuery == true)
        {
            return new QueryRedactor((Options.RedactQueryParameters ?? []).Concat(InjectedQueryParameters));
        }

        if (Options.RedactQueryParameters is { Length: > 0 })
        {
            Add("RedactQueryParameters", "has no effect unless RecordQuery is true");
        }

        return null;
    }

    /// <summary>Every listener's handshake deadline and connection cap.</summary>
    public ListenerLimits Limits()
    {
        var timeout = Positive(Options.HandshakeTimeout, ListenerLimits.DefaultHandshakeTimeout, Key + ":HandshakeTimeout");
        if (timeout > ListenerLimits.MaxHandshakeTimeout)
        {
            Add("HandshakeTimeout", "must be at most " + ListenerLimits.MaxHandshakeTimeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture) + ": a longer deadline lets stalled connections pile up");
        }

        var max = Options.MaxConnections ?? ListenerLimits.DefaultMaxConnections;
        if (max is < 1 or > ListenerLimits.MaxMaxConnections)
        {
            Add("MaxConnections", max + " is not between 1 and " + ListenerLimits.MaxMaxConnections);
        }

        return timeout > TimeSpan.Zero && timeout <= ListenerLimits.MaxHandshakeTimeout && max is >= 1 and <= ListenerLimits.MaxMaxConnections
            ? new ListenerLimits(timeout, max)
            : ListenerLimits.Default;
    }
}
