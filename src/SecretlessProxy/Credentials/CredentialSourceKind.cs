using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>An <see cref="ICredentialSourceKind"/> whose keys bind to <typeparamref name="TOptions"/>.</summary>
internal abstract class CredentialSourceKind<TOptions> : ICredentialSourceKind
    where TOptions : class
{
    public abstract string Name { get; }

    public abstract CredentialShape MayYield { get; }

    public BoundCredentialSource Bind(IConfigurationSection section)
    {
        var options = BindOptions(section);
        return new BoundCredentialSource(this, hasUsername => Yields(options, hasUsername), context => Compile(options, context)) { Audience = Audience(options) };
    }

    /// <summary>
    /// <c>section.Get&lt;TOptions&gt;()</c>, written in each kind where the type is concrete: the
    /// binding source generator (Native AOT) emits code only for calls whose type it can see.
    /// </summary>
    protected abstract TOptions BindOptions(IConfigurationSection section);

    /// <summary>
    /// What a source with these settings yields. Known whether or not the settings are valid, so a
    /// policy that needs something else is told so even while its credential has errors of its own.
    /// </summary>
    /// <param name="hasUsername">Whether the credential gives <c>Username</c> or <c>UsernameFile</c>, keys every kind shares.</param>
    public abstract CredentialShape Yields(TOptions options, bool hasUsername);

    /// <summary>
    /// The one server a value of these settings is valid at (<see cref="CredentialAudience"/>), for
    /// the listeners that log in with it; null (the default) when the value is not tied to a server
    /// or the settings do not say which.
    /// </summary>
    public virtual CredentialAudience? Audience(TOptions options) => null;

    /// <summary>
    /// Validates the settings, each problem added to <see cref="CredentialSourceContext.Errors"/>
    /// under its key, and builds the source; null when a problem was reported.
    /// </summary>
    public abstract ICredentialSource? Compile(TOptions options, CredentialSourceContext context);
}
