namespace SecretlessProxy.Core;

/// <summary>
/// Finds an injector's refusal inside what the forwarder reports: YARP wraps what the upstream
/// client throws while it reads the request content, sometimes in an <see cref="AggregateException"/>.
/// </summary>
internal static class ExceptionChain
{
    /// <summary>The first <typeparamref name="T"/> in <paramref name="exception"/> or anything it wraps, else null.</summary>
    public static T? Find<T>(Exception? exception)
        where T : Exception
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is T found)
            {
                return found;
            }

            if (e is AggregateException aggregate)
            {
                foreach (var inner in aggregate.InnerExceptions)
                {
                    if (Find<T>(inner) is { } nested)
                    {
                        return nested;
                    }
                }
            }
        }

        return null;
    }
}
