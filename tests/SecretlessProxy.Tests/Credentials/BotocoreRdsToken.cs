using System.Diagnostics;
using SecretlessProxy.Tests.Configuration;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// The RDS auth token Debian's python3-botocore (<c>generate_db_auth_token</c>) computes for the same
/// keys, endpoint, user, region and clock (rds_auth_token.py): the independent reference the proxy's
/// token must equal byte for byte. Secrets go to the script on stdin, never on its command line.
/// </summary>
public static class BotocoreRdsToken
{
    public const string Python = "/usr/bin/python3";

    public static async Task<string> ComputeAsync(string host, int port, string user, string region, DateTimeOffset signedAt, string accessKeyId, string secretAccessKey, string? sessionToken)
    {
        var start = new ProcessStartInfo(Python) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(RepoPaths.Combine("tests", "SecretlessProxy.Tests", "Credentials", "rds_auth_token.py"));
        foreach (var argument in new[] { host, port.ToString(System.Globalization.CultureInfo.InvariantCulture), user, region, signedAt.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        await process.StandardInput.WriteAsync(accessKeyId + "\n" + secretAccessKey + "\n" + (sessionToken ?? string.Empty) + "\n");
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(bound.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException("rds_auth_token.py failed: " + await error);
        }

        return await output;
    }
}
