using System.Net;
using SecretlessProxy.Cli;
using Xunit;

namespace SecretlessProxy.Tests.Cli;

/// <summary>The rules <c>secretless-proxy iptables</c> renders; tests/transparent/pod-test.sh applies them in a network namespace.</summary>
public sealed class IptablesRulesTests
{
    private static readonly IptablesSettings Settings = new(1337, 15001, [80, 443], [IPNetwork.Parse("10.96.0.0/12"), IPNetwork.Parse("fd00::/8")], Ipv6: false);

    [Fact]
    public void Install_exempts_the_proxy_loopback_and_cidrs_before_redirecting()
    {
        var lines = IptablesRules.Install(Settings).Select(s => s.ToShell()).ToArray();

        Assert.Equal(
            [
                "iptables -t nat -N SECRETLESS_OUTPUT 2>/dev/null || true",
                "iptables -t nat -F SECRETLESS_OUTPUT",
                "iptables -t nat -A SECRETLESS_OUTPUT -m owner --uid-owner 1337 -j RETURN",
                "iptables -t nat -A SECRETLESS_OUTPUT -o lo -j RETURN",
                "iptables -t nat -A SECRETLESS_OUTPUT -d 127.0.0.0/8 -j RETURN",
                "iptables -t nat -A SECRETLESS_OUTPUT -d 10.96.0.0/12 -j RETURN",
                "iptables -t nat -A SECRETLESS_OUTPUT -p tcp -m multiport --dports 80,443 -j REDIRECT --to-ports 15001",
                "iptables -t nat -C OUTPUT -p tcp -j SECRETLESS_OUTPUT 2>/dev/null || iptables -t nat -A OUTPUT -p tcp -j SECRETLESS_OUTPUT",
            ],
            lines);
    }

    [Fact]
    public void Ipv6_rules_get_the_ipv6_cidrs_and_loopback()
    {
        var lines = IptablesRules.Install(Settings with { Ipv6 = true }).Select(s => s.ToShell()).Where(l => l.StartsWith("ip6tables ", StringComparison.Ordinal)).ToArray();

        Assert.Contains("ip6tables -t nat -A SECRETLESS_OUTPUT -d ::1/128 -j RETURN", lines);
        Assert.Contains("ip6tables -t nat -A SECRETLESS_OUTPUT -d fd00::/8 -j RETURN", lines);
        Assert.DoesNotContain(lines, l => l.Contains("10.96.0.0/12", StringComparison.Ordinal));
        Assert.Contains("ip6tables -t nat -A SECRETLESS_OUTPUT -m owner --uid-owner 1337 -j RETURN", lines);
    }

    [Fact]
    public void More_than_fifteen_ports_take_several_multiport_rules()
    {
        var ports = Enumerable.Range(8000, 20).ToArray();

        var redirects = IptablesRules.Install(Settings with { RedirectPorts = ports }).Where(s => s.Arguments.Contains("REDIRECT")).ToArray();

        Assert.Equal(2, redirects.Length);
        Assert.Equal(string.Join(',', ports[..15]), redirects[0].Arguments[redirects[0].Arguments.ToList().IndexOf("--dports") + 1]);
    }

    [Fact]
    public void Remove_deletes_every_jump_then_the_chain()
    {
        var steps = IptablesRules.Remove(ipv6: false);

        Assert.Equal(
            [
                "while iptables -t nat -D OUTPUT -p tcp -j SECRETLESS_OUTPUT 2>/dev/null; do :; done",
                "iptables -t nat -F SECRETLESS_OUTPUT 2>/dev/null || true",
                "iptables -t nat -X SECRETLESS_OUTPUT 2>/dev/null || true",
            ],
            steps.Select(s => s.ToShell()));
        Assert.Equal(["-t", "nat", "-D", "OUTPUT", "-p", "tcp", "-j", "SECRETLESS_OUTPUT"], steps[0].With("-D"));
    }

    [Theory]
    [InlineData("80,443", "80,443")]
    [InlineData(" 443 , 443,8443", "443,8443")]
    public void Ports_parse(string text, string expected)
    {
        Assert.Equal(expected, string.Join(',', IptablesRules.ParsePorts(text, out _)!));
    }

    [Theory]
    [InlineData("80,http", "'http' is not a TCP port")]
    [InlineData("0", "'0' is not a TCP port")]
    [InlineData("", "names no port")]
    public void Bad_ports_are_named(string text, string expected)
    {
        Assert.Null(IptablesRules.ParsePorts(text, out var error));
        Assert.Equal(expected, error);
    }

    [Fact]
    public void Cidrs_parse_and_a_bare_address_is_one_host()
    {
        var cidrs = IptablesRules.ParseCidrs("10.0.0.0/8, 169.254.169.254,fd00::/8", out _)!;

        Assert.Equal(["10.0.0.0/8", "169.254.169.254/32", "fd00::/8"], cidrs.Select(c => c.ToString()));
        Assert.Null(IptablesRules.ParseCidrs("10.0.0.0/33", out var error));
        Assert.Contains("'10.0.0.0/33' is not a CIDR", error);
    }

    [Fact]
    public async Task Command_prints_a_script_without_apply()
    {
        var result = await CliRunner.RunAsync("iptables", "--proxy-uid", "1337", "--port", "15001", "--redirect-ports", "443");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.StartsWith("#!/bin/sh", result.Output, StringComparison.Ordinal);
        Assert.Contains("-m multiport --dports 443 -j REDIRECT --to-ports 15001", result.Output);
    }

    [Fact]
    public async Task Command_names_each_bad_option()
    {
        var result = await CliRunner.RunAsync("iptables", "--port", "443", "--redirect-ports", "443", "--exclude-cidrs", "nope");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--proxy-uid: is required", result.Error);
        Assert.Contains("--redirect-ports: includes the listener's own port 443", result.Error);
        Assert.Contains("--exclude-cidrs: 'nope' is not a CIDR", result.Error);
    }
}
