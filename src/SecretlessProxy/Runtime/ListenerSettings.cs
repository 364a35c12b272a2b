namespace SecretlessProxy.Runtime;

/// <summary>
/// What one listener kind compiles from the configuration keys only it reads (a Forward
/// listener's CONNECT ports, a Postgres listener's database server and login), carried by
/// <see cref="ListenerDefinition.Settings"/>. The kind that compiled it is the one that reads it.
/// </summary>
internal abstract class ListenerSettings
{
}
