using System.Buffers;
using System.Text;
using SecretlessProxy.Listeners.Redis;
using Xunit;

namespace SecretlessProxy.Tests.Listeners.Redis;

/// <summary>
/// The app's command stream as the filter passes it to the server: byte for byte for ordinary
/// commands however the bytes are split, the app's logins rewritten in place, anything the server
/// might read differently refused.
/// </summary>
public sealed class RedisCommandFilterTests
{
    private static readonly byte[] ProxyAuth = Resp("AUTH", "app", "proxy-secret");

    private static byte[] Resp(params string[] arguments) => RedisWire.Command(arguments);

    private static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);

    /// <summary>Feeds <paramref name="input"/> in chunks of <paramref name="chunk"/> bytes, as reads would deliver it.</summary>
    private static (byte[] ToServer, string? Error, int Left) Run(byte[] input, int chunk, RedisCommandFilter? filter = null)
    {
        filter ??= new RedisCommandFilter(ProxyAuth);
        var output = new ArrayBufferWriter<byte>();
        var pending = Array.Empty<byte>();
        for (var offset = 0; offset < input.Length; offset += chunk)
        {
            pending = [.. pending, .. input.AsSpan(offset, Math.Min(chunk, input.Length - offset))];
            var sequence = new ReadOnlySequence<byte>(pending);
            var error = filter.Filter(ref sequence, output);
            pending = sequence.ToArray();
            if (error is not null)
            {
                return (output.WrittenSpan.ToArray(), error, pending.Length);
            }
        }

        return (output.WrittenSpan.ToArray(), null, pending.Length);
    }

    public static TheoryData<int> Chunks => new() { 1, 2, 3, 7, 64, 100_000 };

    [Theory]
    [MemberData(nameof(Chunks))]
    public void Ordinary_commands_pass_byte_for_byte_however_they_are_split(int chunk)
    {
        var big = new string('x', 70_000);
        byte[] input = [.. Resp("SET", "key", big), .. Resp("GET", "key"), .. Resp("PING"), .. Resp("SET", "e", ""), .. Resp("AUTHX", "a"), .. Resp("HELL", "o"), .. "*0\r\n"u8, .. Resp("MULTI"), .. Resp("EXEC")];
        var (output, error, left) = Run(input, chunk);
        Assert.Null(error);
        Assert.Equal(0, left);
        byte[] expected = [.. Resp("SET", "key", big), .. Resp("GET", "key"), .. Resp("PING"), .. Resp("SET", "e", ""), .. Resp("AUTHX", "a"), .. Resp("HELL", "o"), .. Resp("MULTI"), .. Resp("EXEC")];
        Assert.Equal(Text(expected), Text(output));
    }

    [Theory]
    [MemberData(nameof(Chunks))]
    public void The_apps_auth_becomes_the_proxys_login_in_its_place_in_the_pipeline(int chunk)
    {
        var filter = new RedisCommandFilter(ProxyAuth);
        byte[] input = [.. Resp("SET", "k", "v"), .. Resp("auth", "someone-else-pw"), .. Resp("GET", "k"), .. Resp("AuTh", "admin", "guess"), .. Resp("PING")];
        var (output, error, _) = Run(input, chunk, filter);
        Assert.Null(error);
        Assert.Equal(Text([.. Resp("SET", "k", "v"), .. ProxyAuth, .. Resp("GET", "k"), .. ProxyAuth, .. Resp("PING")]), Text(output));
        Assert.Equal(2, filter.AuthReplaced);
        Assert.DoesNotContain("guess", Text(output));
    }

    [Fact]
    public void An_auth_with_the_wrong_arity_gets_the_servers_arity_error_without_its_arguments()
    {
        Assert.Equal(Text(Resp("AUTH")), Text(Run(Resp("AUTH"), 100).ToServer));
        Assert.Equal(Text(Resp("AUTH")), Text(Run(Resp("AUTH", "a", "b", "c"), 100).ToServer));
    }

    [Theory]
    [InlineData(new[] { "HELLO", "3", "AUTH", "admin", "pw", "SETNAME", "me" }, new[] { "HELLO", "3", "SETNAME", "me" })]
    [InlineData(new[] { "hello", "2", "auth", "admin", "pw" }, new[] { "hello", "2" })]
    [InlineData(new[] { "HELLO", "3" }, new[] { "HELLO", "3" })]
    [InlineData(new[] { "HELLO" }, new[] { "HELLO" })]
    // The server's syntax error for an AUTH without two arguments, without the argument.
    [InlineData(new[] { "HELLO", "3", "AUTH", "pw" }, new[] { "HELLO", "3", "AUTH" })]
    // At an option the server refuses, the rest is dropped: the server errors on the kept option.
    [InlineData(new[] { "HELLO", "3", "BOGUS", "AUTH", "admin", "pw" }, new[] { "HELLO", "3", "BOGUS" })]
    [InlineData(new[] { "HELLO", "3", "SETNAME", "AUTH", "admin", "pw" }, new[] { "HELLO", "3", "SETNAME", "AUTH", "admin" })]
    public void Hello_loses_its_auth_pair_as_the_server_would_read_it(string[] sent, string[] forwarded)
    {
        Assert.Equal(Text(Resp(forwarded)), Text(Run(Resp(sent), 3).ToServer));
    }

    [Fact]
    public void Reset_is_replaced_by_a_command_whose_error_says_why()
    {
        var filter = new RedisCommandFilter(ProxyAuth);
        var (output, error, _) = Run([.. Resp("RESET"), .. Resp("reset", "extra", new string('y', 5000)), .. Resp("PING")], 5, filter);
        Assert.Null(error);
        var refused = Resp("RESET (refused by secretless-proxy: it would log the connection out of its ACL user)");
        Assert.Equal(Text([.. refused, .. refused, .. Resp("PING")]), Text(output));
        Assert.Equal(2, filter.ResetRefused);
    }

    [Theory]
    [MemberData(nameof(Chunks))]
    public void Inline_commands_are_split_as_the_server_splits_them_and_sent_as_arrays(int chunk)
    {
        // Quoted "AUTH" is still AUTH to the server, so it is to the proxy.
        var (output, error, _) = Run("set k \"a b\\x41\\n\" 'c\\'d'\r\n\r\n\"AUTH\" admin pw\r\nauth x\r\nHELLO 3 AUTH a b\r\nPING\n"u8.ToArray(), chunk);
        Assert.Null(error);
        Assert.Equal(Text([.. Resp("set", "k", "a bA\n", "c'd"), .. ProxyAuth, .. ProxyAuth, .. Resp("HELLO", "3"), .. Resp("PING")]), Text(output));
    }

    [Theory]
    [InlineData("*1\r\n$4\r\nAUTHxx", "expected CRLF")]
    [InlineData("*1\r\n$3\r\nGETxx", "expected CRLF")]
    [InlineData("*1\r$4\r\nPING\r\n", "invalid multibulk length")]
    [InlineData("*01\r\n$4\r\nPING\r\n", "invalid multibulk length")]
    [InlineData("*-1\r\n", "invalid multibulk length")]
    [InlineData("*99999999999\r\n", "invalid multibulk length")]
    [InlineData("*2\r\n$3\r\nGET\r\n:1\r\n", "expected '$', got ':'")]
    [InlineData("*1\r\n+PING\r\n", "expected '$', got '+'")]
    [InlineData("*2\r\n$3\r\nGET\r\n$-1\r\n", "invalid bulk length")]
    [InlineData("*2\r\n$3\r\nGET\r\n$1x\r\n", "invalid bulk length")]
    [InlineData("set k \"unterminated\r\n", "unbalanced quotes")]
    [InlineData("set k \"a\"b\r\n", "unbalanced quotes")]
    [InlineData("get 'it''s'\r\n", "unbalanced quotes")]
    [InlineData("auth a\0b\r\n", "NUL byte")]
    public void Anything_the_server_might_read_differently_is_a_protocol_error(string input, string message)
    {
        var (_, error, _) = Run(Encoding.UTF8.GetBytes(input), 1);
        Assert.NotNull(error);
        Assert.Contains(message, error);
    }

    [Fact]
    public void Oversized_logins_and_lines_are_refused_without_being_buffered_whole()
    {
        var longAuth = Resp("AUTH", "u", new string('p', RedisCommandFilter.MaxInspectedCommandBytes));
        Assert.Contains("longer than", Run(longAuth, 4096).Error);
        Assert.Contains("more than", Run(Resp([.. Enumerable.Repeat("HELLO", 20)]), 4096).Error);
        Assert.Contains("too big inline request", Run(Encoding.ASCII.GetBytes(new string('a', RedisCommandFilter.MaxInlineLength + 10)), 4096).Error);
        Assert.Contains("invalid multibulk length", Run(Encoding.ASCII.GetBytes("*" + new string('1', 40)), 1).Error);
    }
}
