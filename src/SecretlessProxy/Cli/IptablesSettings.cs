using System.Net;

namespace SecretlessProxy.Cli;

/// <summary>What the <c>iptables</c> command was asked for, validated.</summary>
internal sealed record IptablesSettings(int ProxyUid, int ListenerPort, IReadOnlyList<int> RedirectPorts, IReadOnlyList<IPNetwork> ExcludeCidrs, bool Ipv6);
