using Xunit;
using SecretlessProxy.Core;
using SecretlessProxy.Injection;
using SecretlessProxy.Policy;

namespace SecretlessProxy.Tests.Policy;

/// <summary>
/// Which policies decide a database connection (<see cref="PolicySet.EvaluateLogin"/>): only those for
/// the listener's login, so a caller refused by an admin login's policy never falls through to a
/// wider policy and logs in as admin. The same set keeps HTTP's fallback to a wider policy.
/// </summary>
public sealed class DatabaseLoginSelectionTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);

    private static readonly RequestDestination Orders = DatabaseDestination.For("postgres", "db.internal", 5432, "orders");

    private static readonly Caller App = new(isKnown: true, uid: 1000, pid: 42, executable: "/usr/bin/app", executableSha256: null, containerId: null, cgroup: null);

    private static readonly Caller Admin = new(isKnown: true, uid: 0, pid: 43, executable: "/usr/bin/migrate", executableSha256: null, containerId: null, cgroup: null);

    private static CompiledPolicy Policy(string name, string credential, int? uid = null, string? pathPrefix = null, InjectionRule? injection = null)
    {
        HostPattern.TryParse("db.internal", out var host);
        var conditions = uid is { } u ? new PolicyConditions(new CallerCondition([u], null, null), null, null, null, labelsMatch: true, failedLabel: null) : null;
        return new CompiledPolicy(name, [host!], [5432], null, pathPrefix ?? string.Empty, credential, credential.Length == 0 ? string.Empty : "File", injection ?? DatabaseLoginInjector.Instance, conditions);
    }

    /// <summary>orders-admin names the superuser listener's login and only lets uid 0 in; orders-read names none.</summary>
    private static PolicySet AdminAndRead() => new([Policy("orders-admin", "admin-login", uid: 0), Policy("orders-read", string.Empty)]);

    [Fact]
    public void A_caller_failing_the_admin_policy_is_refused_on_the_admin_listener_and_not_admitted_by_the_wider_policy()
    {
        var decision = AdminAndRead().EvaluateLogin(Orders, "admin-login", new PolicyContext(App, null, Now));

        Assert.Equal(DecisionKind.Deny, decision.Kind);
        Assert.Equal("orders-admin", decision.Policy!.Name);
        Assert.Equal(ConditionFailure.CallerUid, decision.Failure);
        Assert.Contains("policy orders-admin does not allow this request", decision.Reason);
    }

    [Fact]
    public void The_same_caller_logs_in_through_the_read_listener()
    {
        var decision = AdminAndRead().EvaluateLogin(Orders, "read-login", new PolicyContext(App, null, Now));

        Assert.Equal(DecisionKind.Allow, decision.Kind);
        Assert.Equal("orders-read", decision.Policy!.Name);
    }

    [Fact]
    public void A_caller_the_admin_policy_admits_is_admitted_on_both_listeners_each_by_its_own_policy()
    {
        var set = AdminAndRead();

        Assert.Equal("orders-admin", set.EvaluateLogin(Orders, "admin-login", new PolicyContext(Admin, null, Now)).Policy!.Name);
        // orders-admin is more specific but for another login: the read listener is decided by orders-read.
        var read = set.EvaluateLogin(Orders, "read-login", new PolicyContext(Admin, null, Now));
        Assert.Equal(DecisionKind.Allow, read.Kind);
        Assert.Equal("orders-read", read.Policy!.Name);
    }

    [Fact]
    public void A_policy_naming_no_credential_never_admits_a_login_that_another_policy_names()
    {
        // orders-admin covers only the database "orders"; the admin login on "inventory" matches only orders-read.
        var set = new PolicySet([Policy("orders-admin", "admin-login", uid: 0, pathPrefix: "/orders"), Policy("orders-read", string.Empty)]);
        var inventory = Orders with { Path = "/inventory" };

        var decision = set.EvaluateLogin(inventory, "admin-login", new PolicyContext(Admin, null, Now));

        Assert.Equal(DecisionKind.Deny, decision.Kind);
        Assert.Equal("orders-read", decision.Policy!.Name);
        Assert.Equal("policy 'orders-read' names no credential, and logins with 'admin-login' are admitted only by the policies that name it", decision.Reason);
        Assert.Equal(DecisionKind.Allow, set.EvaluateLogin(inventory, "read-login", new PolicyContext(Admin, null, Now)).Kind);
    }

    [Fact]
    public void Policies_for_the_same_login_still_fall_back_from_the_specific_to_the_wider()
    {
        // admin-migrations is the more specific (a path prefix and a Caller condition) and refuses this caller.
        var set = new PolicySet([Policy("admin-migrations", "admin-login", uid: 0, pathPrefix: "/orders"), Policy("admin-any", "admin-login")]);

        var decision = set.EvaluateLogin(Orders, "admin-login", new PolicyContext(App, null, Now));

        Assert.Equal(DecisionKind.Allow, decision.Kind);
        Assert.Equal("admin-any", decision.Policy!.Name);
    }

    [Fact]
    public void Http_evaluation_keeps_falling_back_to_a_wider_policy()
    {
        // Evaluate (HTTP) is unchanged: the most specific passing policy wins whatever credential it names.
        var decision = AdminAndRead().Evaluate(Orders, UnmatchedBehavior.Deny, new PolicyContext(App, null, Now));

        Assert.Equal(DecisionKind.Allow, decision.Kind);
        Assert.Equal("orders-read", decision.Policy!.Name);
    }
}
