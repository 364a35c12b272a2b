using System.Reflection;
using NetArchTest.Rules;
using Xunit;
using SecretlessProxy.Hosting;

namespace SecretlessProxy.Tests.Architecture;

/// <summary>
/// Holds the stage order of docs/architecture.md: each folder (namespace) of the proxy may use only
/// the folders before it. The check reads the compiled IL (NetArchTest, over Mono.Cecil), so a
/// dependency hidden in a method body counts as much as one in a signature.
/// </summary>
public sealed class StageOrderTests
{
    /// <summary>The order of docs/architecture.md, earliest first.</summary>
    public static readonly string[] Stages =
    [
        "Core",
        "Telemetry",
        "Attestation",
        "Identity",
        "Policy",
        "Credentials",
        "Injection",
        "Certificates",
        "Runtime",
        "Forwarding",
        "Listeners",
        "Governance",
        "Configuration",
        "Admin",
        "Hosting",
        "Demo",
        "Cli",
    ];

    private static readonly Assembly Proxy = typeof(ProxyApp).Assembly;

    public static TheoryData<string> StageNames()
    {
        var data = new TheoryData<string>();
        // The last stage may use every other one: it has no rule to hold.
        foreach (var stage in Stages[..^1])
        {
            data.Add(stage);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(StageNames))]
    public void A_stage_uses_no_stage_after_it(string stage)
    {
        // The trailing dot: NetArchTest matches names by prefix, and "SecretlessProxy.Admin" would
        // also match "SecretlessProxy.Runtime.AdminSettings".
        var later = Stages.SkipWhile(s => s != stage).Skip(1).Select(s => "SecretlessProxy." + s).ToArray();
        Assert.NotEmpty(later);

        var result = Types.InAssembly(Proxy)
            .That().ResideInNamespace("SecretlessProxy." + stage)
            .ShouldNot().HaveDependencyOnAny(later)
            .GetResult();

        Assert.True(result.IsSuccessful, stage + " uses a later stage in: " + string.Join("; ", result.FailingTypes.Select(t => t.FullName + " (" + t.Explanation + ")")));
    }

    [Fact]
    public void Every_folder_of_the_proxy_has_a_place_in_the_order()
    {
        var namespaces = Proxy.GetTypes()
            .Select(t => t.Namespace)
            .Where(n => n is not null && n.StartsWith("SecretlessProxy.", StringComparison.Ordinal))
            .Select(n => n!["SecretlessProxy.".Length..].Split('.')[0])
            .Distinct()
            .Order(StringComparer.Ordinal)
            .ToArray();

        Assert.Empty(namespaces.Except(Stages));
        Assert.Contains("Runtime", namespaces);
    }

    [Fact]
    public void The_architecture_document_names_the_same_order()
    {
        var doc = File.ReadAllText(Path.Combine(SecretlessProxy.Tests.Configuration.RepoPaths.Root, "docs", "architecture.md"));
        var line = doc.Split('\n').FirstOrDefault(l => l.StartsWith("Stage order:", StringComparison.Ordinal));
        Assert.NotNull(line);
        var named = line!["Stage order:".Length..].Split('←', '<').Select(s => s.Trim().Trim('`', '.', ' ')).Where(s => s.Length > 0).ToArray();
        Assert.Equal(Stages, named);
    }
}
