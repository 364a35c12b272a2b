using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SecretlessProxy.Core;

/// <summary>
/// The host names the proxy accepts from the app (a CONNECT target, a TLS SNI) before they reach
/// policy, DNS or certificate code: a DNS name of letter-digit-hyphen labels (RFC 1123 section
/// 2.1, RFC 1035 section 2.3.4: labels of 1-63 characters, 253 in all), an IPv4 address in strict
/// dotted-quad form, or an IPv6 address. Anything else (a ';', ',', '=', a space, NUL, a non-ASCII
/// character, an empty label) is not a host, and an X.509 name or a resolver would each read it
/// their own way.
/// </summary>
internal static class HostName
{
    public const int MaxLength = 253;
    public const int MaxLabelLength = 63;

    /// <summary>
    /// The canonical form of <paramref name="text"/>: lower case, without a trailing dot (the root
    /// label, RFC 1034 section 3.1: <c>example.com.</c> is <c>example.com</c>), an IPv6 address in
    /// its RFC 5952 text form. False when it is neither a DNS name nor an IP literal.
    /// </summary>
    public static bool TryNormalize(string? text, [NotNullWhen(true)] out string? normalized)
    {
        normalized = null;
        if (string.IsNullOrEmpty(text) || text.Length > MaxLength + 1)
        {
            return false;
        }

        if (text.Contains(':'))
        {
            return TryNormalizeIPv6(text, out normalized);
        }

        var name = text.EndsWith('.') ? text[..^1] : text;
        if (name.Length == 0 || name.Length > MaxLength)
        {
            return false;
        }

        // All digits and dots: an IPv4 address, or nothing. "127.1", "0x7f.1" and "010.0.0.1" are
        // addresses to inet_aton (and to IPAddress.Parse) but not to a reader of the policy, so
        // only the four-decimal form is taken; as a DNS name its last label would be all-numeric,
        // which no top-level domain is (RFC 3696 section 2).
        if (name.All(c => c is '.' or (>= '0' and <= '9')))
        {
            return TryNormalizeIPv4(name, out normalized);
        }

        var labelStart = 0;
        for (var i = 0; i <= name.Length; i++)
        {
            if (i < name.Length && name[i] != '.')
            {
                if (!char.IsAsciiLetterOrDigit(name[i]) && name[i] != '-')
                {
                    return false;
                }

                continue;
            }

            var length = i - labelStart;
            if (length is 0 or > MaxLabelLength || name[labelStart] == '-' || name[i - 1] == '-')
            {
                return false;
            }

            labelStart = i + 1;
        }

        // The last label: a top-level domain is never all-numeric (see above).
        var lastDot = name.LastIndexOf('.');
        if (name.AsSpan(lastDot + 1).IndexOfAnyExceptInRange('0', '9') < 0)
        {
            return false;
        }

        normalized = name.ToLowerInvariant();
        return true;
    }

    /// <summary>
    /// A TLS SNI as .NET reports it (SslClientHelloInfo.ServerName, YARP's TlsFrameHelper): both
    /// decode an internationalised name's A-labels to Unicode (RFC 6066 section 3 sends them as
    /// ASCII), so the name is taken back to its A-label form (RFC 5891) before the check.
    /// </summary>
    public static bool TryNormalizeServerName(string? serverName, [NotNullWhen(true)] out string? normalized)
    {
        normalized = null;
        if (string.IsNullOrEmpty(serverName))
        {
            return false;
        }

        if (!Ascii.IsValid(serverName))
        {
            try
            {
                // A new mapping each time (rare: only non-ASCII names), as IdnMapping's instance
                // members are not documented thread-safe. STD3 rules keep its output to LDH.
                serverName = new IdnMapping { UseStd3AsciiRules = true }.GetAscii(serverName);
            }
            catch (ArgumentException)
            {
                return false;
            }
        }

        return TryNormalize(serverName, out normalized);
    }

    private static bool TryNormalizeIPv4(string text, [NotNullWhen(true)] out string? normalized)
    {
        normalized = null;
        var parts = text.Split('.');
        if (parts.Length != 4)
        {
            return false;
        }

        foreach (var part in parts)
        {
            // No leading zeros: "010" is octal 8 to inet_aton, decimal 10 to a reader.
            if (part.Length is 0 or > 3 || (part.Length > 1 && part[0] == '0') ||
                int.Parse(part, NumberStyles.None, CultureInfo.InvariantCulture) > 255)
            {
                return false;
            }
        }

        normalized = text;
        return true;
    }

    private static bool TryNormalizeIPv6(string text, [NotNullWhen(true)] out string? normalized)
    {
        normalized = null;
        // Hex digits, colons and the dots of an embedded IPv4 tail only: IPAddress.TryParse would
        // also take brackets, a port and a zone ("%eth0"), none of which is part of a host.
        foreach (var c in text)
        {
            if (!char.IsAsciiHexDigit(c) && c is not (':' or '.'))
            {
                return false;
            }
        }

        if (!IPAddress.TryParse(text, out var address) || address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return false;
        }

        normalized = address.ToString();
        return true;
    }
}
