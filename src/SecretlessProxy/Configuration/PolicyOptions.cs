namespace SecretlessProxy.Configuration;

public sealed class PolicyOptions
{
    public MatchOptions Match { get; set; } = new();

    /// <summary>Name of an entry under <c>Credentials</c>.</summary>
    public string? Credential { get; set; }

    public InjectOptions Inject { get; set; } = new();
}
