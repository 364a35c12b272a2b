namespace SecretlessProxy.Core;

/// <summary>One configuration problem, with the key path an operator can search for.</summary>
internal sealed record ConfigError(string Key, string Message)
{
    public override string ToString() => Key + ": " + Message;
}
