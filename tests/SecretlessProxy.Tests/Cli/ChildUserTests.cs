using SecretlessProxy.Cli;
using Xunit;

namespace SecretlessProxy.Tests.Cli;

/// <summary><c>run --user</c> as an operator writes it: numbers, names from the user database, and mistakes.</summary>
public sealed class ChildUserTests
{
    [Theory]
    [InlineData("65534", 65534u, 65534u)]
    [InlineData("1000:100", 1000u, 100u)]
    [InlineData("0", 0u, 0u)]
    [InlineData("nobody", 65534u, 65534u)]
    [InlineData("nobody:root", 65534u, 0u)]
    [InlineData("1234:nogroup", 1234u, 65534u)]
    public void User_is_parsed_to_uid_and_gid(string text, uint uid, uint gid)
    {
        Assert.True(ChildUser.TryParse(text, out var user, out var error), error);
        Assert.Equal(new ChildUser(uid, gid), user);
    }

    [Theory]
    [InlineData("", "is not UID, UID:GID, NAME or NAME:GROUP")]
    [InlineData("1:2:3", "is not UID, UID:GID, NAME or NAME:GROUP")]
    [InlineData("1000:", "is not UID, UID:GID, NAME or NAME:GROUP")]
    [InlineData("-1", "there is no user named '-1'")]
    [InlineData("no-such-user-here", "there is no user named 'no-such-user-here'")]
    [InlineData("1000:no-such-group-here", "there is no group named 'no-such-group-here'")]
    [InlineData("4294967295", "4294967295 is not a usable id")]
    [InlineData("1000:4294967295", "4294967295 is not a usable id")]
    public void A_user_that_cannot_be_run_as_is_refused_with_the_reason(string text, string reason)
    {
        Assert.False(ChildUser.TryParse(text, out _, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }
}
