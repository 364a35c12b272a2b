using System.Net;
using SecretlessProxy.Core;
using SecretlessProxy.Listeners;
using SecretlessProxy.Policy;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Configuration;

/// <summary>Listeners: each is compiled by its kind (<see cref="ListenerKindRegistry"/>); the compiler answers what a kind asks.</summary>
internal sealed partial class SnapshotCompiler
{
    private ListenerDefinition? CompileListener(string name, ListenerOptions listener, IConfigurationSection section, UnmatchedBehavior globalUnmatched, IReadOnlyList<string> injectedQueryParameters, Dictionary<string, CredentialOptions> credentials, bool hasLocalCa, List<ConfigError> errors) =>
        ListenerKindRegistry.Compile(new Compilation(this, name, listener, section, errors, globalUnmatched, injectedQueryParameters, credentials, hasLocalCa));

    /// <summary>The listener kind that needs a local CA to mint leaves for intercepted TLS, for the error when LocalCa is missing; null when none does.</summary>
    private static string? LocalCaNeededBy(IEnumerable<ListenerDefinition> listeners)
    {
        foreach (var listener in listeners)
        {
            if (ListenerKindRegistry.For(listener).InterceptsTls)
            {
                return "a " + listener.Mode + " listener";
            }
        }

        return null;
    }

    /// <summary>
    /// Whether a credential can log in to a database: it must exist and yield a user name and a
    /// password. Some sources bring their own user name (a Vault dynamic secret, with each lease);
    /// the others need one configured. Decided by what the source yields, never by its name.
    /// </summary>
    private string? DatabaseLoginProblem(string name, Dictionary<string, CredentialOptions> credentials)
    {
        if (!credentials.ContainsKey(name))
        {
            return "names unknown credential '" + name + "'";
        }

        if (_declared.TryGetValue(name, out var declared) && !declared.Yields.HasFlag(CredentialShape.UsernamePassword))
        {
            return declared.Yields.HasFlag(CredentialShape.Token) ? "credential '" + name + "' has no user name: set Username or UsernameFile on it"
                : declared.Yields.HasFlag(CredentialShape.SigningKeys) ? "an " + declared.Source + " credential holds signing keys, not a database password"
                : "a " + declared.Source + " credential holds no database password";
        }

        return null;
    }

    /// <summary>One listener's compilation, answered with this compiler's rules and files.</summary>
    private sealed class Compilation : ListenerCompilation
    {
        private readonly SnapshotCompiler _compiler;
        private readonly Dictionary<string, CredentialOptions> _credentials;

        public Compilation(SnapshotCompiler compiler, string name, ListenerOptions options, IConfigurationSection section, List<ConfigError> errors, UnmatchedBehavior globalUnmatched, IReadOnlyList<string> injectedQueryParameters, Dictionary<string, CredentialOptions> credentials, bool hasLocalCa)
            : base(name, Root + ":Listeners:" + name, options, section, errors, globalUnmatched, injectedQueryParameters, hasLocalCa)
        {
            _compiler = compiler;
            _credentials = credentials;
        }

        public override IPEndPoint? ParseBindUrl(string? url, string key) => SnapshotCompiler.ParseBindUrl(url, key, Errors);

        public override EndPoint? ParseUnixUrl(string url, string key) => SnapshotCompiler.ParseUnixUrl(url, key, Errors);

        public override UnmatchedBehavior? ParseUnmatched(string? value, string key) => SnapshotCompiler.ParseUnmatched(value, key, Errors);

        public override TimeSpan Positive(TimeSpan? value, TimeSpan fallback, string key) => SnapshotCompiler.Positive(value, fallback, key, Errors);

        public override string RequireFile(string path, string key) => _compiler.RequireFile(path, key, Errors);

        public override string WithoutUserInfo(string url) => SnapshotCompiler.WithoutUserInfo(url);

        public override string? DatabaseLoginProblem(string credentialName) => _compiler.DatabaseLoginProblem(credentialName, _credentials);

        public override (CredentialShape Yields, Credentials.CredentialAudience? Audience)? DeclaredCredential(string credentialName) =>
            _compiler._declared.TryGetValue(credentialName, out var declared) ? (declared.Yields, declared.Audience) : null;
    }
}
