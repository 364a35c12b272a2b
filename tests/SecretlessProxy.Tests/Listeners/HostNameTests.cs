using Xunit;
using SecretlessProxy.Core;

namespace SecretlessProxy.Tests.Listeners;

public sealed class HostNameTests
{
    [Theory]
    [InlineData("api.example.com", "api.example.com")]
    [InlineData("API.Example.COM", "api.example.com")]
    [InlineData("api.example.com.", "api.example.com")]
    [InlineData("localhost", "localhost")]
    [InlineData("xn--bcher-kva.example", "xn--bcher-kva.example")]
    [InlineData("a-b.c-d.example", "a-b.c-d.example")]
    [InlineData("1password.com", "1password.com")]
    [InlineData("10.0.0.1", "10.0.0.1")]
    [InlineData("0.0.0.0", "0.0.0.0")]
    [InlineData("255.255.255.255", "255.255.255.255")]
    [InlineData("::1", "::1")]
    [InlineData("0:0:0:0:0:0:0:1", "::1")]
    [InlineData("2001:DB8::A", "2001:db8::a")]
    [InlineData("::ffff:10.0.0.1", "::ffff:10.0.0.1")]
    public void Dns_names_and_ip_literals_are_accepted_in_canonical_form(string text, string expected)
    {
        Assert.True(HostName.TryNormalize(text, out var normalized));
        Assert.Equal(expected, normalized);
    }

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("a..example.com")]
    [InlineData(".example.com")]
    [InlineData("example.com..")]
    [InlineData("localhost;.example.test")]
    [InlineData("a,b.example.test")]
    [InlineData("a=b.example.test")]
    [InlineData("CN=x,O=y")]
    [InlineData("a b.example.test")]
    [InlineData("a\0b.example.test")]
    [InlineData("a\tb.example.test")]
    [InlineData("ünicode.example.test")]
    [InlineData("under_score.example.test")]
    [InlineData("*.example.test")]
    [InlineData("-lead.example.test")]
    [InlineData("trail-.example.test")]
    [InlineData("a/b.example.test")]
    [InlineData("a%2eb.example.test")]
    [InlineData("user@example.test")]
    [InlineData("[::1]")]
    [InlineData("::1%eth0")]
    [InlineData("fe80::1%2")]
    [InlineData(":::1")]
    [InlineData("example.com:443")]
    [InlineData("127.1")]
    [InlineData("010.0.0.1")]
    [InlineData("256.0.0.1")]
    [InlineData("1.2.3.4.5")]
    [InlineData("1234")]
    [InlineData("example.123")]
    [InlineData("0x7f.0.0.1")]
    public void Anything_else_is_refused(string text)
    {
        Assert.False(HostName.TryNormalize(text, out _));
    }

    [Theory]
    [InlineData("bücher.example", "xn--bcher-kva.example")]
    [InlineData("API.example.com", "api.example.com")]
    public void An_sni_decoded_to_unicode_is_checked_in_its_ascii_form(string serverName, string expected)
    {
        Assert.True(HostName.TryNormalizeServerName(serverName, out var normalized));
        Assert.Equal(expected, normalized);
    }

    [Theory]
    [InlineData("a;b.example")]
    [InlineData("bü_cher.example")]
    [InlineData("")]
    public void An_sni_that_is_not_a_dns_name_is_refused(string serverName)
    {
        Assert.False(HostName.TryNormalizeServerName(serverName, out _));
    }

    [Fact]
    public void Labels_and_names_are_bounded()
    {
        var label63 = new string('a', 63);
        Assert.True(HostName.TryNormalize(label63 + ".example", out _));
        Assert.False(HostName.TryNormalize(new string('a', 64) + ".example", out _));

        // 253 characters in all (RFC 1035's 255 octets on the wire), with or without the root dot.
        var name253 = string.Join('.', Enumerable.Repeat(label63, 3)) + "." + new string('b', 61);
        Assert.Equal(253, name253.Length);
        Assert.True(HostName.TryNormalize(name253, out _));
        Assert.True(HostName.TryNormalize(name253 + ".", out _));
        Assert.False(HostName.TryNormalize("c" + name253, out _));
        Assert.False(HostName.TryNormalize(new string('a', 300), out _));
    }
}
