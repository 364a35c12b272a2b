namespace SecretlessProxy.Cli;

public static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>Something failed at run time (a port in use, an unexpected error).</summary>
    public const int Failure = 1;

    /// <summary>The configuration is invalid; the message names each offending key.</summary>
    public const int InvalidConfig = 2;
}
