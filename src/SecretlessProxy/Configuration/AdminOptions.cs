namespace SecretlessProxy.Configuration;

public sealed class AdminOptions
{
    public const string DefaultUrl = "http://127.0.0.1:9901";

    /// <summary>Where /healthz, /readyz and /credentials are served; never the same port as a listener.</summary>
    public string? Url { get; set; }
}
